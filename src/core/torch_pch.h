#pragma once
// Precompiled header of the torch-using targets: LibTorch's headers cost ~20 s per file
// to parse, so they are parsed once. Only files that need LibTorch are in mixvae_torch.
#include <torch/torch.h>
