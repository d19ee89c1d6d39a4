#include "bindings.hpp"

PYBIND11_MODULE(_native, m) {
  m.doc() = "scalingrl native core (private; use scalingrl.sampler and friends)";
  scalingrl::bind_sampler(m);
  scalingrl::bind_store(m);
}
