#include "prompt_store.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace scalingrl {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

std::string at(const char* name, uint64_t i, double v) {
  return std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v);
}

}  // namespace

void RunningMoments::add(double x, double decay) {
  if (!std::isfinite(x)) return;
  count += 1.0;
  const double w = std::max(decay, 1.0 / count);  // equal weights until 1/decay samples, then EMA
  const double delta = x - mean;
  mean += w * delta;
  var = (1.0 - w) * (var + w * delta * delta);
}

double RunningMoments::z(double x) const {
  if (count < 2.0) return 0.0;
  return (x - mean) / std::sqrt(var + 1e-12);
}

PromptStore::PromptStore(uint64_t n, const DesParams& p, const std::vector<double>& prior_difficulty,
                         const std::vector<double>& reference_cot_length)
    : params_(p),
      visits_(n, 0.0), last_step_(n, -1.0), successes_(n, 0.0), trials_(n, 0.0), prior_alpha_(n), prior_beta_(n),
      pass_last_(n, kNaN), progress_(n, kNaN), reward_std_(n, kNaN), length_(n, kNaN), entropy_(n, kNaN),
      high_fraction_(n, kNaN), reference_z_(n, kNaN), difficulty_(n), cot_(n), adaptability_(n), des_(n) {
  if (!prior_difficulty.empty() && prior_difficulty.size() != n) {
    throw std::invalid_argument("prior_difficulty has " + std::to_string(prior_difficulty.size()) +
                                " entries for a pool of " + std::to_string(n));
  }
  if (!reference_cot_length.empty() && reference_cot_length.size() != n) {
    throw std::invalid_argument("reference_cot_length has " + std::to_string(reference_cot_length.size()) +
                                " entries for a pool of " + std::to_string(n));
  }
  // Reference CoT lengths are standardised once, over the whole pool, on a log scale.
  RunningMoments reference;
  double sum = 0.0, sum_sq = 0.0, count = 0.0;
  for (double len : reference_cot_length) {
    if (std::isfinite(len) && len >= 0.0) {
      const double x = std::log1p(len);
      sum += x;
      sum_sq += x * x;
      count += 1.0;
    }
  }
  if (count >= 2.0) {
    reference.count = count;
    reference.mean = sum / count;
    reference.var = std::max(sum_sq / count - reference.mean * reference.mean, 0.0);
  }
  for (uint64_t i = 0; i < n; ++i) {
    double d = prior_difficulty.empty() ? kNaN : prior_difficulty[i];
    if (std::isfinite(d) && (d < 0.0 || d > 1.0)) {
      throw std::invalid_argument(at("prior_difficulty", i, d) + " is outside [0, 1] (NaN = unknown)");
    }
    const double mean_pass = std::isfinite(d) ? std::clamp(1.0 - d, 0.02, 0.98) : p.unseen_pass;
    prior_alpha_[i] = p.prior_strength * mean_pass;
    prior_beta_[i] = p.prior_strength * (1.0 - mean_pass);
    if (!reference_cot_length.empty() && std::isfinite(reference_cot_length[i]) && reference_cot_length[i] >= 0.0) {
      reference_z_[i] = reference.z(std::log1p(reference_cot_length[i]));
    }
    rescore(i);
  }
}

double PromptStore::pass_mean(uint64_t i) const {
  return (prior_alpha_[i] + successes_[i]) / (prior_alpha_[i] + prior_beta_[i] + trials_[i]);
}

void PromptStore::rescore(uint64_t i) {
  const DesParams& p = params_;
  // Difficulty: learnability of the posterior pass rate, a Beta-shaped bump peaking at target_pass.
  const double q = pass_mean(i);
  const double a = 2.0 * p.target_pass, b = 2.0 * (1.0 - p.target_pass);
  const double peak = std::pow(p.target_pass, a) * std::pow(1.0 - p.target_pass, b);
  difficulty_[i] = std::pow(q, a) * std::pow(1.0 - q, b) / peak;
  // CoT complexity: mean z-score of the measured statistics, or of the reference solution's length.
  double z_sum = 0.0;
  int z_count = 0;
  if (std::isfinite(length_[i])) z_sum += length_moments_.z(length_[i]), ++z_count;
  if (std::isfinite(entropy_[i])) z_sum += entropy_moments_.z(entropy_[i]), ++z_count;
  if (std::isfinite(high_fraction_[i])) z_sum += high_moments_.z(high_fraction_[i]), ++z_count;
  if (z_count == 0 && std::isfinite(reference_z_[i])) z_sum = reference_z_[i], z_count = 1;
  cot_[i] = z_count == 0 ? 0.5 : sigmoid(z_sum / z_count);
  // Reward adaptability: learning progress plus recent reward spread; 0.5 (the pool's middle) until
  // a prompt has two visits.
  const double raw = progress_[i] + 0.5 * (std::isfinite(reward_std_[i]) ? reward_std_[i] : 0.0);
  adaptability_[i] = std::isfinite(progress_[i]) ? sigmoid(adapt_moments_.z(raw)) : 0.5;
  const double total = p.weight_difficulty + p.weight_cot + p.weight_adaptability;
  des_[i] = (p.weight_difficulty * difficulty_[i] + p.weight_cot * cot_[i] + p.weight_adaptability * adaptability_[i]) /
            total;
}

void PromptStore::check_ids(uint64_t m, const int64_t* ids) const {
  for (uint64_t j = 0; j < m; ++j) {
    if (ids[j] < 0 || static_cast<uint64_t>(ids[j]) >= size()) {
      throw std::out_of_range("prompt_ids[" + std::to_string(j) + "] = " + std::to_string(ids[j]) +
                              " is not a prompt of this pool (size " + std::to_string(size()) + ")");
    }
  }
}

void PromptStore::update(int64_t step, uint64_t m, const int64_t* ids, const double* successes, const double* trials,
                         const double* reward_std, const double* length, const double* entropy,
                         const double* high_fraction) {
  check_ids(m, ids);
  for (uint64_t j = 0; j < m; ++j) {
    if (!std::isfinite(trials[j]) || trials[j] <= 0.0) throw std::invalid_argument(at("trials", j, trials[j]) + " must be > 0");
    if (!std::isfinite(successes[j]) || successes[j] < 0.0 || successes[j] > trials[j]) {
      throw std::invalid_argument(at("successes", j, successes[j]) + " must be in [0, trials]");
    }
    if (!std::isfinite(reward_std[j]) || reward_std[j] < 0.0) {
      throw std::invalid_argument(at("reward_std", j, reward_std[j]) + " must be finite and >= 0 (NaN reward?)");
    }
  }
  const DesParams& p = params_;
  const double e = p.stat_ema;
  auto blend = [e](double old, double x) { return std::isfinite(old) ? (1.0 - e) * old + e * x : x; };
  for (uint64_t j = 0; j < m; ++j) {
    const auto i = static_cast<uint64_t>(ids[j]);
    const double pass = successes[j] / trials[j];
    if (std::isfinite(pass_last_[i])) {
      const double change = std::fabs(pass - pass_last_[i]);
      progress_[i] = blend(progress_[i], change);
      adapt_moments_.add(progress_[i] + 0.5 * blend(reward_std_[i], reward_std[j]), p.norm_decay);
    }
    pass_last_[i] = pass;
    reward_std_[i] = blend(reward_std_[i], reward_std[j]);
    successes_[i] = p.count_decay * successes_[i] + successes[j];
    trials_[i] = p.count_decay * trials_[i] + trials[j];
    visits_[i] += 1.0;
    last_step_[i] = static_cast<double>(step);
    if (length && std::isfinite(length[j])) {
      const double x = std::log1p(std::max(length[j], 0.0));
      length_[i] = blend(length_[i], x);
      length_moments_.add(x, p.norm_decay);
    }
    if (entropy && std::isfinite(entropy[j])) {
      entropy_[i] = blend(entropy_[i], entropy[j]);
      entropy_moments_.add(entropy[j], p.norm_decay);
    }
    if (high_fraction && std::isfinite(high_fraction[j])) {
      high_fraction_[i] = blend(high_fraction_[i], high_fraction[j]);
      high_moments_.add(high_fraction[j], p.norm_decay);
    }
  }
  for (uint64_t j = 0; j < m; ++j) rescore(static_cast<uint64_t>(ids[j]));
}

void PromptStore::score(uint64_t m, const int64_t* ids, double* out) const {
  for (uint64_t j = 0; j < m; ++j) {
    const auto i = static_cast<uint64_t>(ids[j]);
    out[4 * j + 0] = difficulty_[i];
    out[4 * j + 1] = cot_[i];
    out[4 * j + 2] = adaptability_[i];
    out[4 * j + 3] = des_[i];
  }
}

const std::vector<std::string>& PromptStore::column_names() {
  static const std::vector<std::string> names = {
      "visits", "last_step", "successes", "trials", "prior_alpha", "prior_beta", "pass_last", "progress",
      "reward_std", "log_length", "entropy_mean", "high_entropy_fraction", "reference_z", "difficulty",
      "cot_complexity", "adaptability", "des"};
  return names;
}

std::map<std::string, std::vector<double>> PromptStore::columns() const {
  const std::vector<const std::vector<double>*> arrays = {
      &visits_, &last_step_, &successes_, &trials_, &prior_alpha_, &prior_beta_, &pass_last_, &progress_,
      &reward_std_, &length_, &entropy_, &high_fraction_, &reference_z_, &difficulty_, &cot_, &adaptability_, &des_};
  std::map<std::string, std::vector<double>> out;
  for (size_t k = 0; k < arrays.size(); ++k) out[column_names()[k]] = *arrays[k];
  return out;
}

std::vector<double> PromptStore::moments() const {
  std::vector<double> out;
  for (const RunningMoments* m : {&length_moments_, &entropy_moments_, &high_moments_, &adapt_moments_}) {
    out.insert(out.end(), {m->mean, m->var, m->count});
  }
  return out;
}

void PromptStore::restore(const std::map<std::string, std::vector<double>>& columns, const std::vector<double>& moments) {
  for (const auto& name : column_names()) {
    auto it = columns.find(name);
    if (it == columns.end()) throw std::invalid_argument("store state lacks column '" + name + "'");
    if (it->second.size() != size()) {
      throw std::invalid_argument("store state column '" + name + "' has " + std::to_string(it->second.size()) +
                                  " entries for a pool of " + std::to_string(size()));
    }
  }
  if (moments.size() != 12) throw std::invalid_argument("store state 'moments' must hold 12 numbers");
  std::vector<std::vector<double>*> arrays = {
      &visits_, &last_step_, &successes_, &trials_, &prior_alpha_, &prior_beta_, &pass_last_, &progress_,
      &reward_std_, &length_, &entropy_, &high_fraction_, &reference_z_, &difficulty_, &cot_, &adaptability_, &des_};
  for (size_t k = 0; k < arrays.size(); ++k) *arrays[k] = columns.at(column_names()[k]);
  RunningMoments* targets[] = {&length_moments_, &entropy_moments_, &high_moments_, &adapt_moments_};
  for (size_t k = 0; k < 4; ++k) *targets[k] = {moments[3 * k], moments[3 * k + 1], moments[3 * k + 2]};
}

}  // namespace scalingrl
