// Per-prompt statistics and the Data Effectiveness Score (docs/des.md has the formulas and reasons).
//
// One structure-of-arrays record per prompt of the pool; an update touches only the prompts of one
// step's batch (O(1) each) and re-scores exactly those. Factor normalisation uses exponentially
// weighted running moments updated by the touched prompts, never a pass over the pool.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace scalingrl {

struct DesParams {
  double prior_strength = 2.0;     // pseudo-trials of the Beta prior on a prompt's pass rate
  double unseen_pass = 0.5;        // prior mean pass rate where the data set has no difficulty metadata
  double count_decay = 0.7;        // weight of earlier visits' counts at each new visit (recency)
  double target_pass = 0.5;        // pass rate at which the difficulty factor peaks
  double stat_ema = 0.5;           // weight of the newest visit in the CoT and adaptability averages
  double norm_decay = 1e-3;        // weight of each new sample in the running normalisation moments
  double weight_difficulty = 1.0;  // 0 switches a factor off
  double weight_cot = 0.5;
  double weight_adaptability = 0.5;
};

// Exponentially weighted mean and variance (West's update); z() standardises against them.
struct RunningMoments {
  double mean = 0.0;
  double var = 1.0;
  double count = 0.0;  // effective samples seen, for a warm-up with equal weights
  void add(double x, double decay);
  double z(double x) const;
};

class PromptStore {
 public:
  PromptStore(uint64_t n, const DesParams& params, const std::vector<double>& prior_difficulty,
              const std::vector<double>& reference_cot_length);

  uint64_t size() const { return visits_.size(); }
  const DesParams& params() const { return params_; }

  // Validates everything first (throws std::out_of_range / std::invalid_argument naming the first
  // bad element), then applies. Per prompt: successes and trials of its group this step, the group's
  // reward std, and CoT means (NaN = not measured: that statistic is left as it was).
  void update(int64_t step, uint64_t m, const int64_t* ids, const double* successes, const double* trials,
              const double* reward_std, const double* length, const double* entropy, const double* high_fraction);

  // Factors and DES of ids into out (m x 4: difficulty, cot_complexity, adaptability, des).
  void score(uint64_t m, const int64_t* ids, double* out) const;
  void check_ids(uint64_t m, const int64_t* ids) const;

  // Named per-prompt columns (copies) and normalisation moments, for export and checkpoints.
  std::map<std::string, std::vector<double>> columns() const;
  std::vector<double> moments() const;
  void restore(const std::map<std::string, std::vector<double>>& columns, const std::vector<double>& moments);

  static const std::vector<std::string>& column_names();

 private:
  double pass_mean(uint64_t i) const;
  void rescore(uint64_t i);

  DesParams params_;
  // Raw statistics.
  std::vector<double> visits_, last_step_, successes_, trials_, prior_alpha_, prior_beta_;
  std::vector<double> pass_last_, progress_, reward_std_, length_, entropy_, high_fraction_, reference_z_;
  // Scores.
  std::vector<double> difficulty_, cot_, adaptability_, des_;
  RunningMoments length_moments_, entropy_moments_, high_moments_, adapt_moments_;
};

}  // namespace scalingrl
