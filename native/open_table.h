// Open addressing over 32-bit keys, as the route table's sender set and its
// WireGuard sessions use it: a power-of-two number of slots, sized once for
// the keys it will hold so that it is at most half full, 0 never a key (it
// marks an empty slot), linear probing from a mixed hash.
#ifndef WEFT_OPEN_TABLE_H_
#define WEFT_OPEN_TABLE_H_

#include <stddef.h>
#include <stdint.h>

namespace weft {

// Slots for a table of at most `keys` keys.
inline size_t open_table_size(size_t keys) {
  size_t size = 4;
  while (size < keys * 2) size <<= 1;
  return size;
}

// The slot holding `key` in a table of `size` slots, or the empty slot where
// it would go; key_at(i) is the key in slot i (0: empty).
template <typename KeyAt>
inline size_t open_table_probe(uint32_t key, size_t size, KeyAt&& key_at) {
  const size_t mask = size - 1;
  size_t i = ((key * 0x9e3779b1u) ^ (key >> 16)) & mask;
  for (uint32_t k = key_at(i); k != key && k != 0; k = key_at(i)) i = (i + 1) & mask;
  return i;
}

}  // namespace weft

#endif  // WEFT_OPEN_TABLE_H_
