package wxtoken

import (
	"context"
	"fmt"
)

var _ BatchLoader = (*FileStore)(nil)

// LoadMany returns one result per key, in the order of keys, each what Load
// would have returned for it: a token, or an error matching ErrNotFound,
// ErrCorrupt or ErrInvalidKey (for that key alone), or naming the I/O failure.
// It opens the folder once and each record relative to it, never stats a
// record before opening it, and reads a key that appears several times once.
// The error, with no results, is for the batch: the folder cannot be opened, or
// ctx ended (it is consulted between records).
func (s *FileStore) LoadMany(ctx context.Context, keys []string) ([]LoadResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	folder, err := openRecordFolder(s.dir)
	if err != nil {
		return nil, fmt.Errorf("wxtoken: file store: load many: %w", err)
	}
	defer folder.close()

	results := make([]LoadResult, len(keys))
	first := make(map[string]int, len(keys)) // where a key's result is
	buf := make([]byte, maxTokenFileSize+1)
	for i, key := range keys {
		if j, ok := first[key]; ok {
			results[i] = results[j]
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		first[key] = i
		if err := checkKey(key); err != nil {
			results[i].Err = err
			continue
		}
		results[i].Token, results[i].Err = folder.read(key+".json", buf)
	}
	return results, nil
}
