#include "cluster/nccl_communicator.h"

#include "core/error.h"

#if defined(FACETEX_HAVE_NCCL) && defined(FACETEX_HAVE_TORCH_CUDA)

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "cluster/mpi_communicator.h"
#include "cluster/nccl_transport.h"
#include "core/atomic_file.h"
#include "core/env_param.h"
#include "core/log.h"

namespace facetex::cluster {
namespace {

using Clock = std::chrono::steady_clock;

nccl::DType dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return nccl::DType::kFloat32;
    case at::kDouble: return nccl::DType::kFloat64;
    case at::kHalf: return nccl::DType::kFloat16;
    case at::kBFloat16: return nccl::DType::kBFloat16;
    case at::kLong: return nccl::DType::kInt64;
    case at::kInt: return nccl::DType::kInt32;
    case at::kByte: return nccl::DType::kUInt8;
    case at::kChar: return nccl::DType::kInt8;
    default: break;
  }
  throw UsageError(fmt::format("NCCL communicator: tensors of type {} are not supported", c10::toString(t.scalar_type())));
}

nccl::Op op_of(ReduceOp op) {
  return op == ReduceOp::kMax ? nccl::Op::kMax : op == ReduceOp::kMin ? nccl::Op::kMin : nccl::Op::kSum;
}

// The unique id: MPI broadcast when MPI is up, else a rendezvous file rank 0 writes atomically.
nccl::UniqueId exchange_id(const World& world) {
  nccl::UniqueId id{};
  if (world.rank == 0) id = nccl::new_unique_id();
  const std::string file = env_string("FACETEX_NCCL_ID_FILE", "");
  if (file.empty()) {
    auto mpi = make_mpi_communicator(world);
    at::Tensor t = at::empty({static_cast<int64_t>(id.size())}, at::kByte);
    std::memcpy(t.data_ptr<uint8_t>(), id.data(), id.size());
    mpi->broadcast(t, 0);
    std::memcpy(id.data(), t.data_ptr<uint8_t>(), id.size());
    return id;
  }
  if (world.rank == 0) {
    write_file_atomic(file, std::string(id.data(), id.size()));
    return id;
  }
  const double limit = comm_timeout_seconds();
  const auto t0 = Clock::now();
  for (;;) {
    std::ifstream f(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (bytes.size() == id.size()) {
      std::memcpy(id.data(), bytes.data(), id.size());
      return id;
    }
    FACETEX_CHECK_RUNTIME(std::chrono::duration<double>(Clock::now() - t0).count() < limit,
                          "rank {}: no NCCL id in {} after {:.0f} s (FACETEX_NCCL_ID_FILE)", world.rank, file, limit);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

class NcclWork final : public CommWork {
 public:
  NcclWork(at::Tensor keep, cudaEvent_t start, cudaEvent_t done, c10::DeviceIndex device)
      : keep_(std::move(keep)), start_(start), done_(done), device_(device) {}
  ~NcclWork() override {
    cudaEventDestroy(start_);
    cudaEventDestroy(done_);
  }
  // The caller's stream waits for the collective (no host synchronisation).
  void wait() override {
    cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(device_).stream(), done_, 0);
  }
  double busy_seconds() const override {
    float ms = 0;
    if (cudaEventSynchronize(done_) != cudaSuccess || cudaEventElapsedTime(&ms, start_, done_) != cudaSuccess) return 0;
    return ms / 1e3;
  }
 private:
  at::Tensor keep_;  // the buffer stays alive until the collective finished
  cudaEvent_t start_, done_;
  c10::DeviceIndex device_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const World& world, const c10::Device& device)
      : log_(log::get("cluster")), world_(world), device_(device),
        comm_stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())) {
    c10::cuda::CUDAGuard guard(device_);
    transport_ = std::make_unique<nccl::Transport>(world.rank, world.size, exchange_id(world), device_.index());
    watchdog_ = std::thread([this] { watch(); });
  }
  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    cudaDeviceSynchronize();
  }

  int rank() const override { return world_.rank; }
  int size() const override { return world_.size; }
  const char* backend() const override { return "nccl"; }

  void allreduce(at::Tensor& t, ReduceOp op) override {
    run_staged(t, [&](at::Tensor& d, cudaStream_t s) {
      transport_->allreduce(d.data_ptr(), static_cast<size_t>(d.numel()), dtype(d), op_of(op), s);
    });
  }

  std::shared_ptr<CommWork> allreduce_async(at::Tensor t) override {
    FACETEX_CHECK_USAGE(t.is_cuda() && t.is_contiguous(), "NCCL allreduce_async needs a contiguous CUDA tensor");
    c10::cuda::CUDAGuard guard(device_);
    cudaEvent_t ready, start, done;
    cudaEventCreateWithFlags(&ready, cudaEventDisableTiming);
    cudaEventCreate(&start);
    cudaEventCreate(&done);
    // The communication stream starts when the producer stream has written the bucket.
    cudaEventRecord(ready, c10::cuda::getCurrentCUDAStream(device_.index()).stream());
    cudaStreamWaitEvent(comm_stream_.stream(), ready, 0);
    cudaEventDestroy(ready);
    cudaEventRecord(start, comm_stream_.stream());
    transport_->allreduce(t.data_ptr(), static_cast<size_t>(t.numel()), dtype(t), nccl::Op::kSum, comm_stream_.stream());
    cudaEventRecord(done, comm_stream_.stream());
    track(comm_stream_.stream());
    return std::make_shared<NcclWork>(t, start, done, device_.index());
  }

  void broadcast(at::Tensor& t, int root) override {
    run_staged(t, [&](at::Tensor& d, cudaStream_t s) {
      transport_->broadcast(d.data_ptr(), static_cast<size_t>(d.numel()), dtype(d), root, s);
    });
  }

  at::Tensor allgather(const at::Tensor& input) override {
    c10::cuda::CUDAGuard guard(device_);
    at::Tensor in = input.to(device_).contiguous();
    std::vector<int64_t> shape{world_.size};
    for (int64_t d : in.sizes()) shape.push_back(d);
    at::Tensor out = at::empty(shape, in.options());
    const cudaStream_t s = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    transport_->allgather(in.data_ptr(), out.data_ptr(), static_cast<size_t>(in.numel()), dtype(in), s);
    synchronize_tracked(s);
    return input.is_cuda() ? out : out.cpu();
  }

  void barrier() override {
    at::Tensor t = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(device_));
    allreduce(t, ReduceOp::kSum);
  }

 private:
  // Runs a collective on the current stream; CPU tensors go through a device copy and come back. Synchronous for
  // the host when the tensor is on the CPU (its value is needed there), stream-ordered otherwise.
  template <class F>
  void run_staged(at::Tensor& t, F&& collective) {
    c10::cuda::CUDAGuard guard(device_);
    const bool staged = !t.is_cuda();
    at::Tensor d = staged ? t.to(device_).contiguous() : t;
    FACETEX_CHECK_USAGE(d.is_contiguous(), "NCCL communicator: tensors must be contiguous");
    const cudaStream_t s = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    collective(d, s);
    if (staged) {
      synchronize_tracked(s);
      t.copy_(d.cpu());
    }
  }

  // Host waits for `stream`, with the watchdog measuring how long.
  void synchronize_tracked(cudaStream_t s) {
    track(s);
    cudaStreamSynchronize(s);
  }

  // The watchdog's own marker after the work queued on `s` so far (it owns and destroys the event).
  void track(cudaStream_t s) {
    cudaEvent_t e;
    cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    cudaEventRecord(e, s);
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back({e, Clock::now()});
  }

  // Polls NCCL's async error and the oldest pending collective; a failure aborts NCCL (so kernels blocked on a dead
  // peer return) and ends the process — never an indefinite hang.
  void watch() {
    const double limit = comm_timeout_seconds();
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      while (!pending_.empty() && cudaEventQuery(pending_.front().first) == cudaSuccess) {
        cudaEventDestroy(pending_.front().first);
        pending_.pop_front();
      }
      std::string why = transport_->async_error();
      if (why.empty() && !pending_.empty()) {
        const double waited = std::chrono::duration<double>(Clock::now() - pending_.front().second).count();
        if (waited > limit) why = fmt::format("a collective has not completed after {:.0f} s (FACETEX_COMM_TIMEOUT)", waited);
      }
      if (why.empty()) continue;
      log_.critical("rank {} of {}: NCCL: {}: another rank is dead or hung; aborting the communicator and exiting with 1",
                    world_.rank, world_.size, why);
      log_.flush();
      transport_->abort();
      std::fflush(nullptr);
      ::_exit(1);
    }
  }

  spdlog::logger& log_;
  World world_;
  c10::Device device_;
  c10::cuda::CUDAStream comm_stream_;
  std::unique_ptr<nccl::Transport> transport_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<cudaEvent_t, Clock::time_point>> pending_;  // markers after queued collectives, oldest first
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace

bool nccl_available() { return true; }

std::shared_ptr<Communicator> make_nccl_communicator(const World& world, const c10::Device& device) {
  FACETEX_CHECK_USAGE(device.is_cuda(), "the NCCL communicator needs a CUDA device (run.device = cuda)");
  return std::make_shared<NcclCommunicator>(world, device);
}

}  // namespace facetex::cluster

#else

namespace facetex::cluster {

bool nccl_available() { return false; }

std::shared_ptr<Communicator> make_nccl_communicator(const World&, const c10::Device&) {
  throw UsageError("this build has no NCCL communicator (it needs a CUDA LibTorch and NCCL at configure time)");
}

}  // namespace facetex::cluster

#endif
