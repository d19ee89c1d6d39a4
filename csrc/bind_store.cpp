// Python bindings of the per-prompt store. Arguments are checked here before any state changes.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "prompt_store.hpp"

namespace py = pybind11;

namespace scalingrl {
namespace {

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Ids = py::array_t<int64_t, py::array::c_style>;

std::vector<double> optional_vector(const py::object& o) {
  if (o.is_none()) return {};
  auto a = Doubles::ensure(o);
  if (!a || a.ndim() != 1) throw py::value_error("expected a 1-D float array");
  return std::vector<double>(a.data(), a.data() + a.size());
}

const double* column(const Doubles& a, const char* name, py::ssize_t m) {
  if (a.ndim() != 1 || a.shape(0) != m) {
    throw py::value_error(std::string(name) + " must be 1-D with " + std::to_string(m) + " entries, got shape (" +
                          (a.ndim() ? std::to_string(a.shape(0)) : std::string()) + ")");
  }
  return a.data();
}

}  // namespace

void bind_store(py::module_& module) {
  py::class_<DesParams>(module, "DesParams")
      .def(py::init<>())
      .def_readwrite("prior_strength", &DesParams::prior_strength)
      .def_readwrite("unseen_pass", &DesParams::unseen_pass)
      .def_readwrite("count_decay", &DesParams::count_decay)
      .def_readwrite("target_pass", &DesParams::target_pass)
      .def_readwrite("stat_ema", &DesParams::stat_ema)
      .def_readwrite("norm_decay", &DesParams::norm_decay)
      .def_readwrite("weight_difficulty", &DesParams::weight_difficulty)
      .def_readwrite("weight_cot", &DesParams::weight_cot)
      .def_readwrite("weight_adaptability", &DesParams::weight_adaptability);

  py::class_<PromptStore>(module, "PromptStore")
      .def(py::init([](uint64_t n, const DesParams& p, const py::object& prior, const py::object& reference) {
             try {
               return PromptStore(n, p, optional_vector(prior), optional_vector(reference));
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
           }),
           py::arg("n"), py::arg("params"), py::arg("prior_difficulty") = py::none(),
           py::arg("reference_cot_length") = py::none())
      .def("__len__", &PromptStore::size)
      .def("update",
           [](PromptStore& s, int64_t step, const Ids& ids, const Doubles& successes, const Doubles& trials,
              const Doubles& reward_std, const py::object& length, const py::object& entropy,
              const py::object& high_fraction) {
             if (ids.ndim() != 1) throw py::value_error("prompt_ids must be 1-D");
             const py::ssize_t m = ids.shape(0);
             const double* succ = column(successes, "successes", m);
             const double* tri = column(trials, "trials", m);
             const double* rstd = column(reward_std, "reward_std", m);
             Doubles len_a, ent_a, high_a;
             const double* len = nullptr;
             const double* ent = nullptr;
             const double* high = nullptr;
             if (!length.is_none()) len_a = Doubles::ensure(length), len = column(len_a, "response_length", m);
             if (!entropy.is_none()) ent_a = Doubles::ensure(entropy), ent = column(ent_a, "entropy_mean", m);
             if (!high_fraction.is_none()) {
               high_a = Doubles::ensure(high_fraction), high = column(high_a, "high_entropy_fraction", m);
             }
             std::string out_of_range, invalid;
             {
               py::gil_scoped_release release;
               try {
                 s.update(step, static_cast<uint64_t>(m), ids.data(), succ, tri, rstd, len, ent, high);
               } catch (const std::out_of_range& e) {
                 out_of_range = e.what();
               } catch (const std::invalid_argument& e) {
                 invalid = e.what();
               }
             }
             if (!out_of_range.empty()) throw py::index_error(out_of_range);
             if (!invalid.empty()) throw py::value_error(invalid);
           },
           py::arg("step"), py::arg("prompt_ids"), py::arg("successes"), py::arg("trials"), py::arg("reward_std"),
           py::arg("response_length") = py::none(), py::arg("entropy_mean") = py::none(),
           py::arg("high_entropy_fraction") = py::none())
      .def("score",
           [](const PromptStore& s, const Ids& ids) {
             if (ids.ndim() != 1) throw py::value_error("prompt_ids must be 1-D");
             const auto m = static_cast<uint64_t>(ids.shape(0));
             try {
               s.check_ids(m, ids.data());
             } catch (const std::out_of_range& e) {
               throw py::index_error(e.what());
             }
             py::array_t<double> out({static_cast<py::ssize_t>(m), py::ssize_t{4}});
             s.score(m, ids.data(), out.mutable_data());
             return out;
           },
           py::arg("prompt_ids"))
      .def("columns",
           [](const PromptStore& s) {
             py::dict d;
             for (const auto& [name, values] : s.columns()) {
               d[py::str(name)] = py::array_t<double>(static_cast<py::ssize_t>(values.size()), values.data());
             }
             return d;
           })
      .def("moments", [](const PromptStore& s) {
        const auto v = s.moments();
        return py::array_t<double>(static_cast<py::ssize_t>(v.size()), v.data());
      })
      .def("restore",
           [](PromptStore& s, const py::dict& columns, const py::object& moments) {
             std::map<std::string, std::vector<double>> cols;
             for (auto item : columns) {
               auto a = Doubles::ensure(item.second);
               if (!a || a.ndim() != 1) throw py::value_error("store state column '" + py::str(item.first).cast<std::string>() + "' is not a 1-D array");
               cols[py::str(item.first).cast<std::string>()] = std::vector<double>(a.data(), a.data() + a.size());
             }
             try {
               s.restore(cols, optional_vector(moments));
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
           });
}

}  // namespace scalingrl
