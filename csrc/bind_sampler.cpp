// Python bindings of the samplers. Arguments are checked here, at the boundary, before any state
// changes; bulk work runs with the GIL released and under the sampler's own lock.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "sampler.hpp"

namespace py = pybind11;

namespace scalingrl {
namespace {

using IdArray = py::array_t<int64_t, py::array::c_style>;
using WeightArray = py::array_t<double, py::array::c_style>;

void check_1d(const py::array& a, const char* name) {
  if (a.ndim() != 1) {
    throw py::value_error(std::string(name) + " must be 1-D, got " + std::to_string(a.ndim()) + " dimensions");
  }
}

void check_pair(const IdArray& ids, const WeightArray& weights) {
  check_1d(ids, "ids");
  check_1d(weights, "weights");
  if (ids.shape(0) != weights.shape(0)) {
    throw py::value_error("ids and weights must have the same length, got " + std::to_string(ids.shape(0)) +
                          " and " + std::to_string(weights.shape(0)));
  }
}

// Returns the error message for a bad k, or "" when the request can be served.
std::string check_k(int64_t k, bool replace, uint64_t positive) {
  if (k < 0) return "k must be >= 0, got " + std::to_string(k);
  if (k > 0 && positive == 0) return "cannot sample k=" + std::to_string(k) + ": every weight is 0";
  if (!replace && static_cast<uint64_t>(k) > positive) {
    return "k=" + std::to_string(k) + " distinct ids requested but only " + std::to_string(positive) +
           " have positive weight";
  }
  return "";
}

// Runs fn under the sampler's lock with the GIL released: the lock is never awaited while holding
// the GIL, so Python threads sharing a sampler cannot deadlock.
template <typename Fn>
void with_lock(const DynamicSampler& s, Fn&& fn) {
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(s.mutex());
  fn();
}

template <typename T>
std::vector<T> to_vector(const py::array& a, const char* name) {
  auto typed = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!typed) throw py::value_error(std::string("state '") + name + "' has the wrong type");
  check_1d(typed, name);
  return std::vector<T>(typed.data(), typed.data() + typed.size());
}

}  // namespace

void bind_sampler(py::module_& m) {
  py::class_<DynamicSampler>(m, "DynamicSampler")
      .def(py::init([](uint64_t n, uint64_t seed, int window) {
             try {
               return DynamicSampler(n, seed, window);
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
           }),
           py::arg("n"), py::arg("seed") = 0, py::arg("window") = DynamicSampler::kDefaultWindow)
      .def("__len__", &DynamicSampler::size)
      .def_property_readonly("window", &DynamicSampler::window)
      .def_property_readonly("positive_count", &DynamicSampler::positive_count)
      .def("update",
           [](DynamicSampler& s, const IdArray& ids, const WeightArray& weights) {
             check_pair(ids, weights);
             const int64_t* id_ptr = ids.data();
             const double* w_ptr = weights.data();
             const auto m = static_cast<size_t>(ids.shape(0));
             std::string out_of_range, invalid;
             with_lock(s, [&] {
               try {
                 s.validate_update(id_ptr, w_ptr, m);
               } catch (const std::out_of_range& e) {
                 out_of_range = e.what();
                 return;
               } catch (const std::invalid_argument& e) {
                 invalid = e.what();
                 return;
               }
               s.apply_update(id_ptr, w_ptr, m);
             });
             if (!out_of_range.empty()) throw py::index_error(out_of_range);
             if (!invalid.empty()) throw py::value_error(invalid);
           },
           py::arg("ids"), py::arg("weights"))
      .def("sample",
           [](DynamicSampler& s, int64_t k, bool replace) {
             py::array_t<int64_t> out(k < 0 ? 0 : k);
             int64_t* out_ptr = out.mutable_data();
             std::string error;
             with_lock(s, [&] {
               error = check_k(k, replace, s.positive_count());
               if (error.empty()) s.sample(static_cast<size_t>(k), replace, out_ptr);
             });
             if (!error.empty()) throw py::value_error(error);
             return out;
           },
           py::arg("k"), py::arg("replace") = false)
      .def("weights",
           [](const DynamicSampler& s, py::object ids) {
             const auto n = static_cast<py::ssize_t>(s.size());
             if (ids.is_none()) {
               py::array_t<double> out(n);
               double* o = out.mutable_data();
               with_lock(s, [&] { std::copy(s.weights().begin(), s.weights().end(), o); });
               return out;
             }
             auto id_array = ids.cast<IdArray>();
             check_1d(id_array, "ids");
             const int64_t* p = id_array.data();
             for (py::ssize_t i = 0; i < id_array.shape(0); ++i) {
               if (p[i] < 0 || p[i] >= n) {
                 throw py::index_error("ids[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                                       " is out of range for a sampler of n=" + std::to_string(n));
               }
             }
             py::array_t<double> out(id_array.shape(0));
             double* o = out.mutable_data();
             with_lock(s, [&] {
               for (py::ssize_t i = 0; i < id_array.shape(0); ++i) o[i] = s.weight(static_cast<uint64_t>(p[i]));
             });
             return out;
           },
           py::arg("ids") = py::none())
      .def("total_weight",
           [](const DynamicSampler& s) {
             double total = 0.0;
             with_lock(s, [&] { total = s.total_weight(); });
             return total;
           })
      .def("state",
           [](const DynamicSampler& s) {
             std::array<uint64_t, 4> rng{};
             std::vector<uint32_t> members;
             std::vector<uint16_t> levels;
             std::vector<double> weights;
             with_lock(s, [&] {
               rng = s.rng_state();
               members = s.member_order();
               levels = s.level_order();
               weights = s.weights();
             });
             py::dict d;
             d["weights"] = py::array_t<double>(static_cast<py::ssize_t>(weights.size()), weights.data());
             d["rng"] = py::array_t<uint64_t>(4, rng.data());
             d["member_order"] = py::array_t<uint32_t>(static_cast<py::ssize_t>(members.size()), members.data());
             d["level_order"] = py::array_t<uint16_t>(static_cast<py::ssize_t>(levels.size()), levels.data());
             return d;
           })
      .def("restore",
           [](DynamicSampler& s, const py::array& weights, const py::array& rng, const py::array& member_order,
              const py::array& level_order) {
             auto w = to_vector<double>(weights, "weights");
             auto r = to_vector<uint64_t>(rng, "rng");
             if (r.size() != 4) throw py::value_error("state 'rng' must hold 4 words, got " + std::to_string(r.size()));
             if (w.size() != s.size()) {
               throw py::value_error("state is for n=" + std::to_string(w.size()) + " items but this sampler has n=" +
                                     std::to_string(s.size()));
             }
             auto members = to_vector<uint32_t>(member_order, "member_order");
             auto levels = to_vector<uint16_t>(level_order, "level_order");
             DynamicSampler restored = [&] {
               try {
                 return DynamicSampler::restore(s.window(), w, {r[0], r[1], r[2], r[3]}, members, levels);
               } catch (const std::invalid_argument& e) {
                 throw py::value_error(e.what());
               }
             }();
             with_lock(s, [&] { s = std::move(restored); });
           });

  py::class_<FenwickSampler>(m, "FenwickSampler")
      .def(py::init<uint64_t, uint64_t>(), py::arg("n"), py::arg("seed") = 0)
      .def("__len__", &FenwickSampler::size)
      .def("update",
           [](FenwickSampler& s, const IdArray& ids, const WeightArray& weights) {
             check_pair(ids, weights);
             py::gil_scoped_release release;
             s.update(ids.data(), weights.data(), static_cast<size_t>(ids.shape(0)));
           },
           py::arg("ids"), py::arg("weights"))
      .def("sample",
           [](FenwickSampler& s, int64_t k, bool replace) {
             if (k < 0) throw py::value_error("k must be >= 0");
             py::array_t<int64_t> out(k);
             int64_t* out_ptr = out.mutable_data();
             py::gil_scoped_release release;
             s.sample(static_cast<size_t>(k), replace, out_ptr);
             return out;
           },
           py::arg("k"), py::arg("replace") = false)
      .def("total_weight", &FenwickSampler::total_weight);
}

}  // namespace scalingrl
