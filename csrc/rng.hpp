// Random bits for the native samplers: xoshiro256** (Blackman & Vigna) seeded through splitmix64.
// The state is four 64-bit words, so it checkpoints as a plain array and a restored generator
// continues the identical stream. Every helper below is exact: no floating point is involved.
#pragma once

#include <array>
#include <cstdint>

namespace scalingrl {

using u128 = unsigned __int128;

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t z = seed;
    for (auto& word : s_) word = splitmix64(z);
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform integer with `bits` random bits, 0 <= bits <= 64.
  uint64_t bits(int bits) { return bits == 0 ? 0 : next() >> (64 - bits); }

  // Uniform integer in [0, n), n > 0: Lemire's multiply-shift with rejection (unbiased).
  uint64_t below(uint64_t n) {
    uint64_t x = next();
    u128 m = static_cast<u128>(x) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        x = next();
        m = static_cast<u128>(x) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // Uniform integer in [0, n), n > 0, for 128-bit n: masked rejection (acceptance >= 1/2).
  u128 below128(u128 n) {
    const u128 top = n - 1;
    if ((top >> 64) == 0) {  // n <= 2^64
      const auto top64 = static_cast<uint64_t>(top);
      return top64 == ~uint64_t{0} ? next() : below(top64 + 1);
    }
    const int high_bits = 64 - __builtin_clzll(static_cast<uint64_t>(top >> 64));
    for (;;) {
      const u128 x = (static_cast<u128>(bits(high_bits)) << 64) | next();
      if (x < n) return x;
    }
  }

  // True with probability 2^-k, k >= 0 (all k bits zero).
  bool one_in_pow2(int64_t k) {
    while (k >= 64) {
      if (next() != 0) return false;
      k -= 64;
    }
    return bits(static_cast<int>(k)) == 0;
  }

  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& z) {
    uint64_t r = (z += 0x9e3779b97f4a7c15ULL);
    r = (r ^ (r >> 30)) * 0xbf58476d1ce4e5b9ULL;
    r = (r ^ (r >> 27)) * 0x94d049bb133111ebULL;
    return r ^ (r >> 31);
  }

  std::array<uint64_t, 4> s_{};
};

}  // namespace scalingrl
