# cluster: the communicator and gradient reducer, as one process and under real Open MPI with 2 and 3 ranks.
facetex_test(test_cluster TORCH WHOLE
  SOURCES cluster/test_communicator.cpp
  DEPS facetex_cluster LABELS cluster)
find_program(FACETEX_MPIRUN NAMES mpirun)
if(FACETEX_MPIRUN)
  # As root (CI containers) Open MPI wants explicit consent; shared memory + self only (one node). A hung collective
  # fails the test within FACETEX_COMM_TIMEOUT instead of stalling ctest.
  set(FACETEX_MPIRUN_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1
      OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1 FACETEX_COMM_TIMEOUT=60
      FACETEX_SOURCE_DIR=${PROJECT_SOURCE_DIR})
  foreach(np 2 3)
    add_test(NAME test_cluster_np${np} COMMAND ${FACETEX_MPIRUN} -np ${np} $<TARGET_FILE:test_cluster>)
    set_tests_properties(test_cluster_np${np} PROPERTIES ENVIRONMENT "${FACETEX_MPIRUN_ENV}" LABELS "cluster;mpi"
                         TIMEOUT 300)
  endforeach()
endif()
if(FACETEX_MPIRUN)
  add_test(NAME test_multirank_training
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cluster/test_multirank_training.sh $<TARGET_FILE:facetex>)
  set_tests_properties(test_multirank_training PROPERTIES LABELS "cluster;mpi;train" SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()
