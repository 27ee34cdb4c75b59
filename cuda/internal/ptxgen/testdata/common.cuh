#ifndef MLXQ_BITS
#define MLXQ_BITS 15
#endif
