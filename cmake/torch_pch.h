// The precompiled header shared by every torch translation unit (see cmake/FacetexTargets.cmake).
// Keep it to the stable, narrow torch API that both Debian's LibTorch 1.13 and LibTorch 2.x provide.
#pragma once
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>
