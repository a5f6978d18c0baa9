// The MPI backend: CPU tensors over Open MPI.
//
// Threading: one communication thread owns every MPI call after MPI_Init_thread. Collectives are posted to it in
// program order and run one after another with blocking MPI calls, so (a) asynchronous allreduces really progress
// while backward computes — Open MPI's non-blocking collectives only progress inside MPI calls, which a thread that
// is busy in autograd never makes — and (b) the order of collectives is the posting order on every rank.
// A watchdog thread ends the process when one operation runs longer than FACETEX_COMM_TIMEOUT (a dead or hung peer):
// the launcher (mpirun, or srun --kill-on-bad-exit) then takes the remaining ranks down.
#include "cluster/mpi_communicator.h"

#include <ATen/ATen.h>
// The C API only: the deprecated C++ bindings would need libmpi_cxx at link time.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <limits>
#include <future>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace facetex::cluster {
namespace {

using Clock = std::chrono::steady_clock;

MPI_Datatype mpi_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    case at::kInt: return MPI_INT32_T;
    case at::kByte: return MPI_UINT8_T;
    case at::kChar: return MPI_INT8_T;
    default: break;
  }
  throw UsageError(fmt::format("MPI communicator: tensors of type {} are not supported", c10::toString(t.scalar_type())));
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

void check_tensor(const at::Tensor& t, const char* what) {
  FACETEX_CHECK_USAGE(t.defined() && t.device().is_cpu() && t.is_contiguous(),
                      "MPI communicator: {} needs a defined, contiguous CPU tensor", what);
  FACETEX_CHECK_USAGE(t.numel() <= std::numeric_limits<int>::max(), "MPI communicator: {} of {} elements is too large",
                      what, t.numel());
}

void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw RuntimeError(fmt::format("{} failed: {}", call, std::string(text, static_cast<size_t>(len))));
}

class Work final : public CommWork {
 public:
  explicit Work(std::future<double> f) : future_(std::move(f)) {}
  void wait() override {
    if (future_.valid()) busy_ = future_.get();  // rethrows an MPI error
  }
  double busy_seconds() const override { return busy_; }

 private:
  std::future<double> future_;
  double busy_ = 0;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const World& world) : log_(log::get("cluster")) {
    init_mpi_runtime();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    FACETEX_CHECK_USAGE(rank_ == world.rank && size_ == world.size,
                        "MPI says rank {} of {}, the {} environment says rank {} of {}", rank_, size_, world.launcher,
                        world.rank, world.size);
    comm_thread_ = std::thread([this] { comm_loop(); });
    watchdog_ = std::thread([this] { watch(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    comm_thread_.join();
    watchdog_.join();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }

  void allreduce(at::Tensor& t, ReduceOp op) override {
    check_tensor(t, "allreduce");
    post("allreduce", [t, op]() mutable {
      mpi_check(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), mpi_op(op),
                              MPI_COMM_WORLD),
                "MPI_Allreduce");
    }).get();
  }

  std::shared_ptr<CommWork> allreduce_async(at::Tensor t) override {
    check_tensor(t, "allreduce_async");
    return std::make_shared<Work>(post("allreduce (gradient bucket)", [t]() mutable {
      mpi_check(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), MPI_SUM,
                              MPI_COMM_WORLD),
                "MPI_Allreduce");
    }));
  }

  void broadcast(at::Tensor& t, int root) override {
    check_tensor(t, "broadcast");
    FACETEX_CHECK_USAGE(root >= 0 && root < size_, "broadcast root {} is not a rank of {}", root, size_);
    post("broadcast", [t, root]() mutable {
      mpi_check(MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), root, MPI_COMM_WORLD), "MPI_Bcast");
    }).get();
  }

  at::Tensor allgather(const at::Tensor& input) override {
    at::Tensor t = input.contiguous();
    check_tensor(t, "allgather");
    std::vector<int64_t> shape{size_};
    for (int64_t d : t.sizes()) shape.push_back(d);
    at::Tensor out = at::empty(shape, t.options());
    post("allgather", [t, out]() mutable {
      mpi_check(MPI_Allgather(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), out.data_ptr(),
                              static_cast<int>(t.numel()), mpi_type(t), MPI_COMM_WORLD),
                "MPI_Allgather");
    }).get();
    return out;
  }

  void barrier() override {
    post("barrier", [] { mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }).get();
  }

 private:
  struct Task {
    const char* name;
    std::function<void()> run;
    std::promise<double> done;
  };

  std::future<double> post(const char* name, std::function<void()> run) {
    Task task{name, std::move(run), {}};
    std::future<double> f = task.done.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_all();
    return f;
  }

  void comm_loop() {
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        task = std::move(queue_.front());
        queue_.pop_front();
        current_ = task.name;
        started_ = Clock::now();
        busy_ = true;
      }
      try {
        task.run();
        std::lock_guard<std::mutex> lock(mutex_);
        busy_ = false;
        task.done.set_value(std::chrono::duration<double>(Clock::now() - started_).count());
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        busy_ = false;
        task.done.set_exception(std::current_exception());
      }
    }
  }

  void watch() {
    const double limit = comm_timeout_seconds();
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      if (!busy_) continue;
      const double waited = std::chrono::duration<double>(Clock::now() - started_).count();
      if (waited <= limit) continue;
      // A peer died or stopped making progress. Leaving is the only bounded option: MPI cannot cancel a
      // collective, and the launcher turns one failed rank into a failed job.
      log_.critical("rank {} of {}: {} has not completed after {:.0f} s (FACETEX_COMM_TIMEOUT={:.0f}): another rank is "
                    "dead or hung; exiting with 1",
                    rank_, size_, current_, waited, limit);
      log_.flush();
      std::fflush(nullptr);
      ::_exit(1);
    }
  }

  static void init_mpi_runtime() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    // Only the communication thread calls MPI after initialisation, so SERIALIZED is enough; MULTIPLE is asked for
    // because the watchdog's exit may race a running call.
    FACETEX_CHECK_RUNTIME(provided >= MPI_THREAD_SERIALIZED, "MPI provides thread level {}, facetex needs SERIALIZED",
                          provided);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }

  spdlog::logger& log_;
  int rank_ = 0, size_ = 1;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  bool busy_ = false;
  const char* current_ = "";
  Clock::time_point started_;
  std::thread comm_thread_, watchdog_;
};

}  // namespace

std::shared_ptr<Communicator> make_mpi_communicator(const World& world) {
  return std::make_shared<MpiCommunicator>(world);
}

void finish_mpi(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const bool agreed_exit = exit_code == 0 || exit_code == 75;  // every rank leaves the same way
  if (size > 1 && !agreed_exit) {
    // This rank failed alone: MPI_Finalize would wait for peers that are still training. Abort the job instead.
    MPI_Abort(MPI_COMM_WORLD, exit_code);
  }
  MPI_Finalize();
}

}  // namespace facetex::cluster
