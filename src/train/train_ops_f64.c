/* The training ops on double (tr64_*): train_ops_impl.h's body with TRT double. The gradient
 * checks run here, where central differences are accurate to ~1e-9. */
#include "train/train_ops.h"

#define TRT double
#define TRN(name) tr64_##name
#include "train/train_ops_impl.h"
