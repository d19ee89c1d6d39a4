// Exact dynamic weighted sampling over n items with O(1) updates and O(1) expected draws.
//
// Method (docs/sampler.md has the proof sketch): an item of weight w = m * 2^(e-52) (m the 53-bit
// integer mantissa) lives in bucket e. Bucket e with n_e members sits at level k = e + 1 + ceil(log2 n_e),
// so 2^k bounds the bucket's mass and is at most 4x it. A draw picks a level with probability
// proportional to (buckets at that level) * 2^k using exact integer arithmetic, a bucket uniformly at
// that level, a slot r uniformly in [0, 2^ceil(log2 n_e)) (a slot past the last member rejects), and
// accepts member r with probability m / 2^53. Each item is proposed-and-accepted with probability
// proportional to w exactly; nothing is ever summed in floating point, so updates cannot drift.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "rng.hpp"

namespace scalingrl {

class DynamicSampler {
 public:
  static constexpr int kMinExp = -1074;  // exponent of the smallest subnormal double
  static constexpr int kMaxExp = 1023;
  static constexpr int kNumBuckets = kMaxExp - kMinExp + 1;  // 2098
  static constexpr int kMaxLogCount = 32;                     // n < 2^32 items
  static constexpr int kNumLevels = kNumBuckets + kMaxLogCount + 1;
  static constexpr int kLevelWords = (kNumLevels + 63) / 64;
  static constexpr int kMaxWindow = 63;
  // Levels below the top level handled by the fast path. At 40 the window mass stays under 2^53 units
  // (so one 64-bit draw picks the level) while the rare path under it has probability below 2^-28.
  static constexpr int kDefaultWindow = 40;

  // A smaller window only serves tests: it sends more draws through the rare path under the window.
  DynamicSampler(uint64_t n, uint64_t seed, int window = kDefaultWindow);

  uint64_t size() const { return weights_.size(); }
  uint64_t positive_count() const { return positive_; }
  double weight(uint64_t id) const { return weights_[id]; }
  const std::vector<double>& weights() const { return weights_; }

  // Checks ids and weights without touching state; throws std::out_of_range / std::invalid_argument.
  void validate_update(const int64_t* ids, const double* weights, size_t m) const;
  // Applies validated updates in order (a repeated id ends with its last weight).
  void apply_update(const int64_t* ids, const double* weights, size_t m);

  // Draws k ids. replace=false: successive sampling without replacement. Caller checks k.
  void sample(size_t k, bool replace, int64_t* out);

  double total_weight() const;

  // Checkpointing: the weights, the generator and the internal member order (which the mapping from
  // random bits to ids depends on), so a restored sampler continues the identical stream of draws.
  std::array<uint64_t, 4> rng_state() const { return rng_.state(); }
  std::vector<uint32_t> member_order() const;   // ids bucket by bucket, in slot order
  std::vector<uint16_t> level_order() const;    // bucket indices level by level, in slot order
  // Builds a sampler from checkpoint parts; throws std::invalid_argument naming the bad part.
  int window() const { return window_; }
  static DynamicSampler restore(int window, const std::vector<double>& weights, const std::array<uint64_t, 4>& rng,
                                const std::vector<uint32_t>& member_order,
                                const std::vector<uint16_t>& level_order);

  std::mutex& mutex() const { return mutex_; }
  DynamicSampler(DynamicSampler&& other) noexcept;
  DynamicSampler& operator=(DynamicSampler&& other) noexcept;

 private:
  struct Member {
    uint32_t id;
    uint32_t mantissa_high;  // mantissa >> 21: decides all but a 2^-32 fraction of acceptance tests
  };
  struct Bucket {
    std::vector<Member> members;
    u128 mantissa_sum = 0;  // exact sum of the members' 53-bit mantissas
    int32_t level = -1;     // -1 while empty
    uint32_t level_slot = 0;
  };
  struct LevelCache {
    bool valid = false;
    int top = -1;
    int count = 0;
    std::array<int, kMaxWindow + 1> level{};
    std::array<u128, kMaxWindow + 1> cumulative{};
    u128 window_mass = 0;          // in units of 2^(top - window)
    uint64_t below_window = 0;     // buckets whose level is under the window
  };

  static void decompose(double w, int* bucket, uint64_t* mantissa);
  void insert(uint32_t id, double w);
  void remove(uint32_t id);
  void relevel(int bucket);
  void rebuild_cache();
  int draw_bucket();
  bool try_draw(uint32_t* out);
  bool propose(int* bucket, uint64_t* slot);
  bool accept(const Member& member);
  void sample_with_replacement(size_t k, int64_t* out);

  std::vector<double> weights_;
  std::vector<uint32_t> slot_;  // position of each positive-weight item inside its bucket
  std::vector<Bucket> buckets_;
  std::vector<std::vector<uint16_t>> levels_;
  std::array<uint64_t, kLevelWords> level_mask_{};
  std::array<uint64_t, (kNumBuckets + 63) / 64> bucket_mask_{};
  uint64_t positive_ = 0;
  uint64_t nonempty_buckets_ = 0;
  int top_level_ = -1;
  int window_ = kDefaultWindow;
  LevelCache cache_;
  Xoshiro256 rng_;
  mutable std::mutex mutex_;
  std::vector<std::pair<uint32_t, double>> drawn_;  // scratch for sampling without replacement
};

// Baseline for the benchmarks and tests: a Fenwick (binary indexed) tree of float64 partial sums,
// the textbook dynamic sampler. O(log n) updates and draws; its sums drift under updates.
class FenwickSampler {
 public:
  FenwickSampler(uint64_t n, uint64_t seed);
  uint64_t size() const { return weights_.size(); }
  void update(const int64_t* ids, const double* weights, size_t m);
  void sample(size_t k, bool replace, int64_t* out);
  double total_weight() const;

 private:
  void add(uint64_t i, double delta);
  uint64_t find(double target) const;
  std::vector<double> weights_;
  std::vector<double> tree_;
  uint64_t top_bit_ = 1;
  Xoshiro256 rng_;
};

}  // namespace scalingrl
