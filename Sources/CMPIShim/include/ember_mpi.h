#ifndef EMBER_MPI_H
#define EMBER_MPI_H
// Open MPI's handles (MPI_COMM_WORLD, datatypes, ops, MPI_IN_PLACE) are macros over
// addresses of its global objects, which Swift cannot import; these functions return them.
#include <mpi.h>

MPI_Comm ember_mpi_comm_world(void);
MPI_Datatype ember_mpi_float(void);
MPI_Datatype ember_mpi_int(void);
MPI_Datatype ember_mpi_int64(void);
MPI_Datatype ember_mpi_uint8(void);
MPI_Datatype ember_mpi_uint16(void);
MPI_Op ember_mpi_sum(void);
MPI_Op ember_mpi_max(void);
MPI_Op ember_mpi_min(void);
void *ember_mpi_in_place(void);
int ember_mpi_thread_serialized(void);
int ember_mpi_success(void);
MPI_Status *ember_mpi_status_ignore(void);
#endif
