#include "ember_mpi.h"

MPI_Comm ember_mpi_comm_world(void) { return MPI_COMM_WORLD; }
MPI_Datatype ember_mpi_float(void) { return MPI_FLOAT; }
MPI_Datatype ember_mpi_int(void) { return MPI_INT; }
MPI_Datatype ember_mpi_int64(void) { return MPI_INT64_T; }
MPI_Datatype ember_mpi_uint8(void) { return MPI_UINT8_T; }
MPI_Datatype ember_mpi_uint16(void) { return MPI_UINT16_T; }
MPI_Op ember_mpi_sum(void) { return MPI_SUM; }
MPI_Op ember_mpi_max(void) { return MPI_MAX; }
MPI_Op ember_mpi_min(void) { return MPI_MIN; }
void *ember_mpi_in_place(void) { return MPI_IN_PLACE; }
int ember_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
int ember_mpi_success(void) { return MPI_SUCCESS; }
MPI_Status *ember_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
