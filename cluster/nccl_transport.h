// The torch-free half of the NCCL backend: one NCCL communicator over raw device pointers and CUDA streams, with
// the async-error polling and abort that make a dead peer fail the job instead of hanging it. Compiled wherever
// nccl.h exists (CI compile-checks it with a CPU LibTorch); cluster/nccl_communicator.cpp adapts it to tensors in
// CUDA LibTorch builds.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <string>

namespace facetex::cluster::nccl {

enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kUInt8, kInt8 };
enum class Op { kSum, kMax, kMin };

using UniqueId = std::array<char, 128>;  // ncclUniqueId's bytes (NCCL_UNIQUE_ID_BYTES)

// Rank 0 creates the id; every rank receives it out of band (MPI broadcast or a rendezvous file).
UniqueId new_unique_id();

class Transport {
 public:
  // Collective over all ranks; `device` is this rank's CUDA device (made current).
  Transport(int rank, int size, const UniqueId& id, int device);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  void allreduce(void* buffer, size_t count, DType type, Op op, cudaStream_t stream);
  void broadcast(void* buffer, size_t count, DType type, int root, cudaStream_t stream);
  void allgather(const void* send, void* recv, size_t count_per_rank, DType type, cudaStream_t stream);

  // The communicator's asynchronous error (a peer died, a network failure) as text; empty when healthy.
  std::string async_error() const;
  // Tears the communicator down so that kernels waiting on peers return (ncclCommAbort). Idempotent.
  void abort();

  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  void* comm_ = nullptr;  // ncclComm_t (kept opaque: nccl.h stays out of this header)
  int rank_ = 0, size_ = 1, device_ = 0;
  bool aborted_ = false;
};

}  // namespace facetex::cluster::nccl
