#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace scalingrl {
namespace {

int ceil_log2(uint64_t n) { return n <= 1 ? 0 : 64 - __builtin_clzll(n - 1); }

std::string describe(double w) {
  std::ostringstream s;
  s.precision(17);
  s << w;
  return s.str();
}

}  // namespace

DynamicSampler::DynamicSampler(uint64_t n, uint64_t seed, int window)
    : weights_(n, 0.0), slot_(n, 0), buckets_(kNumBuckets), levels_(kNumLevels), window_(window), rng_(seed) {
  if (n >= (uint64_t{1} << kMaxLogCount)) {
    throw std::invalid_argument("n=" + std::to_string(n) + " is too large: at most 2^32 - 1 items");
  }
  if (window < 1 || window > kMaxWindow) {
    throw std::invalid_argument("window=" + std::to_string(window) + " must be in [1, 63]");
  }
}

DynamicSampler::DynamicSampler(DynamicSampler&& o) noexcept { *this = std::move(o); }

DynamicSampler& DynamicSampler::operator=(DynamicSampler&& o) noexcept {
  weights_ = std::move(o.weights_);
  slot_ = std::move(o.slot_);
  buckets_ = std::move(o.buckets_);
  levels_ = std::move(o.levels_);
  level_mask_ = o.level_mask_;
  bucket_mask_ = o.bucket_mask_;
  positive_ = o.positive_;
  nonempty_buckets_ = o.nonempty_buckets_;
  top_level_ = o.top_level_;
  window_ = o.window_;
  cache_ = o.cache_;
  rng_ = o.rng_;
  drawn_ = std::move(o.drawn_);
  return *this;
}

void DynamicSampler::decompose(double w, int* bucket, uint64_t* mantissa) {
  int exponent = 0;
  const double fraction = std::frexp(w, &exponent);  // w = fraction * 2^exponent, fraction in [0.5, 1)
  *bucket = exponent - 1 - kMinExp;
  *mantissa = static_cast<uint64_t>(std::ldexp(fraction, 53));  // exact: integer in [2^52, 2^53)
}

void DynamicSampler::validate_update(const int64_t* ids, const double* weights, size_t m) const {
  const uint64_t n = weights_.size();
  for (size_t i = 0; i < m; ++i) {
    if (ids[i] < 0 || static_cast<uint64_t>(ids[i]) >= n) {
      throw std::out_of_range("ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                              " is out of range for a sampler of n=" + std::to_string(n));
    }
    const double w = weights[i];
    if (!(w >= 0.0) || !std::isfinite(w)) {
      throw std::invalid_argument("weights[" + std::to_string(i) + "] = " + describe(w) + " (id " +
                                  std::to_string(ids[i]) +
                                  ") is not a finite non-negative number");
    }
  }
}

void DynamicSampler::apply_update(const int64_t* ids, const double* weights, size_t m) {
  for (size_t i = 0; i < m; ++i) {
    const auto id = static_cast<uint32_t>(ids[i]);
    const double w = weights[i] == 0.0 ? 0.0 : weights[i];  // folds -0.0 into 0.0
    if (weights_[id] == w) continue;
    if (weights_[id] > 0.0) remove(id);
    weights_[id] = w;
    if (w > 0.0) insert(id, w);
  }
}

void DynamicSampler::insert(uint32_t id, double w) {
  int b = 0;
  uint64_t mantissa = 0;
  decompose(w, &b, &mantissa);
  Bucket& bucket = buckets_[b];
  slot_[id] = static_cast<uint32_t>(bucket.members.size());
  bucket.members.push_back({id, static_cast<uint32_t>(mantissa >> 21)});
  bucket.mantissa_sum += mantissa;
  ++positive_;
  relevel(b);
}

void DynamicSampler::remove(uint32_t id) {
  int b = 0;
  uint64_t mantissa = 0;
  decompose(weights_[id], &b, &mantissa);
  Bucket& bucket = buckets_[b];
  const uint32_t s = slot_[id];
  const Member last = bucket.members.back();
  bucket.members[s] = last;
  slot_[last.id] = s;
  bucket.members.pop_back();
  bucket.mantissa_sum -= mantissa;
  --positive_;
  relevel(b);
}

void DynamicSampler::relevel(int b) {
  Bucket& bucket = buckets_[b];
  const uint64_t count = bucket.members.size();
  // level index = k + 1073 - ... : k = e + 1 + ceil(log2 count) with e = b + kMinExp, shifted to >= 0.
  const int32_t level = count == 0 ? -1 : b + ceil_log2(count);
  if (level == bucket.level) return;
  if (bucket.level >= 0) {
    auto& list = levels_[bucket.level];
    const uint16_t moved = list.back();
    list[bucket.level_slot] = moved;
    buckets_[moved].level_slot = bucket.level_slot;
    list.pop_back();
    if (list.empty()) {
      level_mask_[bucket.level >> 6] &= ~(uint64_t{1} << (bucket.level & 63));
      if (bucket.level == top_level_) {
        top_level_ = -1;
        for (int w = bucket.level >> 6; w >= 0 && top_level_ < 0; --w) {
          if (level_mask_[w]) top_level_ = w * 64 + 63 - __builtin_clzll(level_mask_[w]);
        }
      }
    }
  } else {
    ++nonempty_buckets_;
    bucket_mask_[b >> 6] |= uint64_t{1} << (b & 63);
  }
  if (level >= 0) {
    auto& list = levels_[level];
    bucket.level_slot = static_cast<uint32_t>(list.size());
    list.push_back(static_cast<uint16_t>(b));
    level_mask_[level >> 6] |= uint64_t{1} << (level & 63);
    top_level_ = std::max(top_level_, static_cast<int>(level));
  } else {
    --nonempty_buckets_;
    bucket_mask_[b >> 6] &= ~(uint64_t{1} << (b & 63));
  }
  bucket.level = level;
  cache_.valid = false;
}

void DynamicSampler::rebuild_cache() {
  LevelCache& c = cache_;
  c.top = top_level_;
  c.count = 0;
  c.window_mass = 0;
  uint64_t in_window = 0;
  const int floor_level = std::max(0, top_level_ - window_);
  for (int level = top_level_; level >= floor_level; --level) {
    if (!(level_mask_[level >> 6] >> (level & 63) & 1)) continue;
    const uint64_t buckets = levels_[level].size();
    in_window += buckets;
    c.window_mass += static_cast<u128>(buckets) << (level - (top_level_ - window_));
    c.level[c.count] = level;
    c.cumulative[c.count] = c.window_mass;
    ++c.count;
  }
  c.below_window = nonempty_buckets_ - in_window;
  c.valid = true;
}

// Picks a bucket with probability proportional to 2^level (exact), returning its index.
int DynamicSampler::draw_bucket() {
  if (!cache_.valid) rebuild_cache();
  const LevelCache& c = cache_;
  const int base = c.top - window_;  // masses are in units of 2^base
  for (;;) {
    const u128 u = rng_.below128(c.window_mass + c.below_window);
    if (u < c.window_mass) {
      int i = 0;
      while (u >= c.cumulative[i]) ++i;
      const u128 offset = u - (i == 0 ? 0 : c.cumulative[i - 1]);
      const int level = c.level[i];
      return levels_[level][static_cast<size_t>(offset >> (level - base))];
    }
    // Rare path: a bucket under the window (each holds < 1/2 unit). Pick one of them uniformly and
    // keep it with probability equal to its mass in units, 2^(level - base); otherwise start over.
    uint64_t j = static_cast<uint64_t>(u - c.window_mass);
    for (int level = base - 1; level >= 0; --level) {
      const uint64_t here = levels_[level].size();
      if (j < here) {
        if (rng_.one_in_pow2(base - level)) return levels_[level][j];
        break;
      }
      j -= here;
    }
  }
}

// Proposes (bucket, slot): slot uniform in [0, 2^ceil(log2 n_b)); false when the slot is empty.
bool DynamicSampler::propose(int* bucket, uint64_t* slot) {
  const int b = draw_bucket();
  *bucket = b;
  *slot = rng_.bits(buckets_[b].level - b);
  return *slot < buckets_[b].members.size();
}

// Keeps a proposed member with probability mantissa / 2^53.
bool DynamicSampler::accept(const Member& member) {
  const uint64_t u = rng_.next() >> 11;  // uniform in [0, 2^53)
  const auto u_high = static_cast<uint32_t>(u >> 21);
  if (u_high != member.mantissa_high) return u_high < member.mantissa_high;
  int ignored = 0;
  uint64_t mantissa = 0;  // tie on the high 32 bits (probability 2^-32): compare all 53
  decompose(weights_[member.id], &ignored, &mantissa);
  return u < mantissa;
}

bool DynamicSampler::try_draw(uint32_t* out) {
  int b = 0;
  uint64_t slot = 0;
  if (!propose(&b, &slot)) return false;
  const Member member = buckets_[b].members[slot];
  if (!accept(member)) return false;
  *out = member.id;
  return true;
}

// Independent draws, a block of proposals at a time: every proposal's member is prefetched before
// any acceptance test reads it, so for large n the cache misses overlap instead of queueing.
void DynamicSampler::sample_with_replacement(size_t k, int64_t* out) {
  constexpr size_t kBlock = 16;
  std::array<const Member*, kBlock> pending{};
  std::array<size_t, kBlock> target{};
  size_t next_out = 0;
  size_t open = 0;  // proposals in flight
  while (next_out < k || open > 0) {
    // Fill the block with proposals for outputs not yet served.
    while (open < kBlock && next_out < k) {
      int b = 0;
      uint64_t slot = 0;
      if (!propose(&b, &slot)) continue;
      pending[open] = &buckets_[b].members[slot];
      __builtin_prefetch(pending[open]);
      target[open] = next_out++;
      ++open;
    }
    // Test them in order; a rejected output is proposed again in the next round.
    size_t kept = 0;
    for (size_t i = 0; i < open; ++i) {
      if (accept(*pending[i])) {
        out[target[i]] = pending[i]->id;
      } else {
        int b = 0;
        uint64_t slot = 0;
        while (!propose(&b, &slot)) {
        }
        pending[kept] = &buckets_[b].members[slot];
        __builtin_prefetch(pending[kept]);
        target[kept++] = target[i];
      }
    }
    open = kept;
  }
}

void DynamicSampler::sample(size_t k, bool replace, int64_t* out) {
  if (replace) {
    sample_with_replacement(k, out);
    return;
  }
  uint32_t id = 0;
  drawn_.clear();
  for (size_t i = 0; i < k; ++i) {
    while (!try_draw(&id)) {
    }
    out[i] = id;
    drawn_.emplace_back(id, weights_[id]);
    remove(id);
    weights_[id] = 0.0;
  }
  for (auto it = drawn_.rbegin(); it != drawn_.rend(); ++it) {
    weights_[it->first] = it->second;
    insert(it->first, it->second);
  }
}

double DynamicSampler::total_weight() const {
  long double total = 0.0L;  // smallest buckets first; each bucket sum is exact
  for (int w = 0; w < static_cast<int>(bucket_mask_.size()); ++w) {
    for (uint64_t bits = bucket_mask_[w]; bits; bits &= bits - 1) {
      const int b = w * 64 + __builtin_ctzll(bits);
      const u128 s = buckets_[b].mantissa_sum;
      const long double hi = static_cast<long double>(static_cast<uint64_t>(s >> 64));
      const long double lo = static_cast<long double>(static_cast<uint64_t>(s));
      total += std::ldexp(std::ldexp(hi, 64) + lo, b + kMinExp - 52);
    }
  }
  return static_cast<double>(total);
}

std::vector<uint32_t> DynamicSampler::member_order() const {
  std::vector<uint32_t> order;
  order.reserve(positive_);
  for (const Bucket& bucket : buckets_) {
    for (const Member& m : bucket.members) order.push_back(m.id);
  }
  return order;
}

std::vector<uint16_t> DynamicSampler::level_order() const {
  std::vector<uint16_t> order;
  order.reserve(nonempty_buckets_);
  for (const auto& list : levels_) order.insert(order.end(), list.begin(), list.end());
  return order;
}

DynamicSampler DynamicSampler::restore(int window, const std::vector<double>& weights, const std::array<uint64_t, 4>& rng,
                                       const std::vector<uint32_t>& member_order,
                                       const std::vector<uint16_t>& level_order) {
  DynamicSampler s(weights.size(), 0, window);
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!(weights[i] >= 0.0) || !std::isfinite(weights[i])) {
      throw std::invalid_argument("state 'weights'[" + std::to_string(i) + "] = " + describe(weights[i]) +
                                  " is not a finite non-negative number");
    }
  }
  if (rng[0] == 0 && rng[1] == 0 && rng[2] == 0 && rng[3] == 0) {
    throw std::invalid_argument("state 'rng' is all zeros, which is not a valid generator state");
  }
  std::vector<char> seen(weights.size(), 0);
  for (uint32_t id : member_order) {
    if (id >= weights.size() || !(weights[id] > 0.0) || seen[id]) {
      throw std::invalid_argument("state 'member_order' is not a permutation of the positive-weight ids (at id " +
                                  std::to_string(id) + ")");
    }
    seen[id] = 1;
    s.weights_[id] = weights[id];
    s.insert(id, weights[id]);
  }
  if (s.positive_ != static_cast<uint64_t>(std::count_if(weights.begin(), weights.end(),
                                                          [](double w) { return w > 0.0; }))) {
    throw std::invalid_argument("state 'member_order' misses some positive-weight ids");
  }
  // Re-lay each level's bucket list in the saved order.
  std::vector<std::vector<uint16_t>> levels(kNumLevels);
  std::vector<char> placed(kNumBuckets, 0);
  for (uint16_t b : level_order) {
    if (b >= kNumBuckets || s.buckets_[b].level < 0 || placed[b]) {
      throw std::invalid_argument("state 'level_order' is not a permutation of the non-empty buckets (at " +
                                  std::to_string(b) + ")");
    }
    placed[b] = 1;
    auto& list = levels[s.buckets_[b].level];
    s.buckets_[b].level_slot = static_cast<uint32_t>(list.size());
    list.push_back(b);
  }
  if (level_order.size() != s.nonempty_buckets_) {
    throw std::invalid_argument("state 'level_order' misses some non-empty buckets");
  }
  s.levels_ = std::move(levels);
  s.cache_.valid = false;
  s.rng_.set_state(rng);
  return s;
}

// ---------------------------------------------------------------------------------------------
FenwickSampler::FenwickSampler(uint64_t n, uint64_t seed) : weights_(n, 0.0), tree_(n + 1, 0.0), rng_(seed) {
  while (top_bit_ * 2 <= n) top_bit_ *= 2;
}

void FenwickSampler::add(uint64_t i, double delta) {
  for (uint64_t j = i + 1; j < tree_.size(); j += j & (0 - j)) tree_[j] += delta;
}

uint64_t FenwickSampler::find(double target) const {
  uint64_t pos = 0;
  for (uint64_t step = top_bit_; step; step >>= 1) {
    if (pos + step < tree_.size() && tree_[pos + step] <= target) {
      pos += step;
      target -= tree_[pos];
    }
  }
  return std::min<uint64_t>(pos, weights_.size() - 1);
}

void FenwickSampler::update(const int64_t* ids, const double* weights, size_t m) {
  for (size_t i = 0; i < m; ++i) {
    const auto id = static_cast<uint64_t>(ids[i]);
    add(id, weights[i] - weights_[id]);
    weights_[id] = weights[i];
  }
}

double FenwickSampler::total_weight() const {
  double total = 0.0;
  for (uint64_t j = tree_.size() - 1; j; j -= j & (0 - j)) total += tree_[j];
  return total;
}

void FenwickSampler::sample(size_t k, bool replace, int64_t* out) {
  std::vector<std::pair<uint64_t, double>> drawn;
  for (size_t i = 0; i < k; ++i) {
    uint64_t id = 0;
    do {
      const double u = static_cast<double>(rng_.next() >> 11) * 0x1.0p-53 * total_weight();
      id = find(u);
    } while (!(weights_[id] > 0.0));  // float drift can land on a zero-weight leaf
    out[i] = static_cast<int64_t>(id);
    if (!replace) {
      drawn.emplace_back(id, weights_[id]);
      add(id, -weights_[id]);
      weights_[id] = 0.0;
    }
  }
  for (const auto& [id, w] : drawn) {
    add(id, w);
    weights_[id] = w;
  }
}

}  // namespace scalingrl
