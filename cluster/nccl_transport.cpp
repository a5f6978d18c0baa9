#include "cluster/nccl_transport.h"

#include <nccl.h>

#include <cstring>

#include "core/error.h"

namespace facetex::cluster::nccl {
namespace {

void check(ncclResult_t rc, const char* call) {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  throw RuntimeError(fmt::format("{} failed: {} ({})", call, ncclGetErrorString(rc), ncclGetLastError(nullptr)));
}

void check_cuda(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess) throw RuntimeError(fmt::format("{} failed: {}", call, cudaGetErrorString(rc)));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::kFloat32: return ncclFloat32;
    case DType::kFloat64: return ncclFloat64;
    case DType::kFloat16: return ncclFloat16;
    case DType::kBFloat16: return ncclBfloat16;
    case DType::kInt64: return ncclInt64;
    case DType::kInt32: return ncclInt32;
    case DType::kUInt8: return ncclUint8;
    case DType::kInt8: return ncclInt8;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(Op op) {
  switch (op) {
    case Op::kSum: return ncclSum;
    case Op::kMax: return ncclMax;
    case Op::kMin: return ncclMin;
  }
  return ncclSum;
}

ncclComm_t as_comm(void* p) { return static_cast<ncclComm_t>(p); }

}  // namespace

static_assert(sizeof(ncclUniqueId) == sizeof(UniqueId), "NCCL unique id size changed");

UniqueId new_unique_id() {
  ncclUniqueId id;
  check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  UniqueId out;
  std::memcpy(out.data(), &id, sizeof(id));
  return out;
}

Transport::Transport(int rank, int size, const UniqueId& id, int device) : rank_(rank), size_(size), device_(device) {
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  ncclUniqueId nid;
  std::memcpy(&nid, id.data(), sizeof(nid));
  ncclComm_t comm = nullptr;
  check(ncclCommInitRank(&comm, size, nid, rank), "ncclCommInitRank");
  comm_ = comm;
}

Transport::~Transport() {
  if (comm_ == nullptr) return;
  if (aborted_) return;
  ncclCommDestroy(as_comm(comm_));  // after every rank's last collective completed (the caller synchronised)
}

void Transport::allreduce(void* buffer, size_t count, DType type, Op op, cudaStream_t stream) {
  check(ncclAllReduce(buffer, buffer, count, nccl_type(type), nccl_op(op), as_comm(comm_), stream), "ncclAllReduce");
}

void Transport::broadcast(void* buffer, size_t count, DType type, int root, cudaStream_t stream) {
  check(ncclBroadcast(buffer, buffer, count, nccl_type(type), root, as_comm(comm_), stream), "ncclBroadcast");
}

void Transport::allgather(const void* send, void* recv, size_t count_per_rank, DType type, cudaStream_t stream) {
  check(ncclAllGather(send, recv, count_per_rank, nccl_type(type), as_comm(comm_), stream), "ncclAllGather");
}

std::string Transport::async_error() const {
  if (comm_ == nullptr || aborted_) return {};
  ncclResult_t state = ncclSuccess;
  const ncclResult_t rc = ncclCommGetAsyncError(as_comm(comm_), &state);
  if (rc != ncclSuccess) return fmt::format("ncclCommGetAsyncError failed: {}", ncclGetErrorString(rc));
  if (state == ncclSuccess || state == ncclInProgress) return {};
  return ncclGetErrorString(state);
}

void Transport::abort() {
  if (comm_ == nullptr || aborted_) return;
  aborted_ = true;
  ncclCommAbort(as_comm(comm_));
}

}  // namespace facetex::cluster::nccl
