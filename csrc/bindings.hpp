// Registration hooks: each csrc/ component binds itself into scalingrl._native.
#pragma once

#include <pybind11/pybind11.h>

namespace scalingrl {
void bind_sampler(pybind11::module_& m);
void bind_store(pybind11::module_& m);
}  // namespace scalingrl
