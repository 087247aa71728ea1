package wxtoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInvalidKey is matched (errors.Is) by the error FileStore returns for a key
// it refuses to turn into a file name.
var ErrInvalidKey = errors.New("wxtoken: invalid store key")

const (
	// maxKeyLen keeps every derived file name well below the 255-byte limit
	// common to file systems.
	maxKeyLen = 128
	// maxTokenFileSize caps what Load reads: a real record is about 200 bytes,
	// so anything this large is damage, and must not cost the process memory.
	maxTokenFileSize = 64 << 10
	// lockRetryDelay is how often a waiting Lock or Save polls the file lock;
	// file locks offer no wait that a context can interrupt.
	lockRetryDelay = 10 * time.Millisecond
	// staleTempAge is the age past which a temporary file counts as left by a
	// save that was interrupted (a process killed mid-save leaves it behind,
	// holding a full token). A save takes milliseconds; the margin keeps a save
	// under way in another process from losing its file.
	staleTempAge = time.Minute
)

// FileStore is a Store that keeps one JSON file per key in a folder, in the
// format of the Node.js recipe it replaces:
//
//	{"createTime":"2020-12-11T03:05:48.123Z","access_token":"...","expires_in":7200}
//
// Files are written atomically (temporary file in the same folder, fsync,
// rename) with mode 0600. Several processes may share the folder: saves are
// serialized across them with a file lock, and FileStore is a Locker.
//
// A process killed in the middle of a save leaves its temporary file,
// .<key>.<digits>.tmp, which holds a full token: NewFileStore removes those
// last modified over a minute ago, and successful saves look for them again at
// most once a minute (one pass over the folder, whatever the number of keys).
//
// Saves of different keys run in parallel. Each fsyncs its record, and
// concurrent saves share the fsyncs of the folder that make their renames
// durable (a group commit): a Save that returned nil survives a crash.
// LoadMany reads a batch of keys in one pass (FileStore is a BatchLoader).
// The folder stays flat: on ext4 a Load, Lock or Save costs about the same in
// a folder of 100,000 records as in one of 1,000.
//
// On Linux the folder holds one lock file, .lock, whatever the number of keys:
// each key locks its own byte of it, one for Lock and another for Save, with
// open file description locks (Linux 3.15 or later), so that fetches and saves
// of different keys do not wait for each other. Elsewhere each key has its own
// lock files, <key>.lock (Lock) and .<key>.save.lock (Save), locked with flock.
// Lock files stay on disk: removing one while another process waits on it
// would let two processes hold "the" lock at once. A lock file that is not a
// regular file (a symbolic link, say) is refused, never followed or created.
//
// A FileStore is safe for concurrent use.
type FileStore struct {
	dir    string
	syncer *dirSyncer
	// nextSweep is when, in Unix nanoseconds, a successful Save next looks
	// for stale temporary files; tests set it to zero to make the next one look.
	nextSweep atomic.Int64
	// fetchLocks and saveLocks serialize Lock and Save of one key within the
	// process, so that goroutines queue there instead of polling the file lock.
	fetchLocks, saveLocks keyLocks
	// beforeRename, when set by tests, runs after the temporary file is
	// complete and before it replaces the record.
	beforeRename func(tmpPath string) error
}

var (
	_ Store  = (*FileStore)(nil)
	_ Locker = (*FileStore)(nil)
)

// NewFileStore returns a FileStore keeping its files in dir. It creates dir and
// its parents with mode 0700 when dir is missing, and fails when dir cannot be
// created or is not a directory. An existing dir that group or others may use
// loses those permissions; when it belongs to another user, or the change fails,
// NewFileStore fails with an error matching fs.ErrPermission instead (on
// systems with Unix permissions). A relative dir is made absolute now, so a
// later change of working directory does not move the store.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("wxtoken: file store: empty directory name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("wxtoken: file store: %w", err)
	}
	if err := ensureDir(abs); err != nil {
		return nil, fmt.Errorf("wxtoken: file store: %w", err)
	}
	now := time.Now()
	removeStaleTemps(abs, now)
	s := &FileStore{dir: abs, syncer: newDirSyncer(abs)}
	s.nextSweep.Store(now.Add(staleTempAge).UnixNano())
	return s, nil
}

// ensureDir creates dir with mode 0700 unless it exists as a directory, which
// tightenDir then closes to group and others.
func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return tightenDir(dir)
	case err == nil:
		return fmt.Errorf("%s is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The umask may have taken bits away; the tokens must not be readable by others
	// either way, and 0700 is what we promise.
	return os.Chmod(dir, 0o700)
}

// removeStaleTemps removes the temporary files that were last modified more
// than staleTempAge before now. It is best effort: a file it cannot remove is
// tried again next time. It reads the folder in chunks, unsorted, so that a
// folder of 100,000 records costs neither a sort nor a slice of them all.
func removeStaleTemps(dir string, now time.Time) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	for {
		entries, err := d.ReadDir(1024)
		for _, e := range entries {
			if _, ok := tempKey(e.Name()); !ok || !e.Type().IsRegular() {
				continue
			}
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > staleTempAge {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
		if err != nil { // io.EOF once the folder is read
			return
		}
	}
}

// maybeSweep removes stale temporary files if the last sweep is staleTempAge
// old; of concurrent callers at most one sweeps. A temporary file is stale only
// when a minute old, so sweeping more often would find nothing new, and on every
// Save it would cost a pass over the whole folder.
func (s *FileStore) maybeSweep(now time.Time) {
	next := s.nextSweep.Load()
	if now.UnixNano() < next || !s.nextSweep.CompareAndSwap(next, now.Add(staleTempAge).UnixNano()) {
		return
	}
	removeStaleTemps(s.dir, now)
}

// tempKey returns the key of a temporary file that writeAtomic names
// ".<key>.<digits>.tmp", and whether name is one.
func tempKey(name string) (string, bool) {
	rest, ok1 := strings.CutPrefix(name, ".")
	rest, ok2 := strings.CutSuffix(rest, ".tmp")
	dot := strings.LastIndexByte(rest, '.')
	if !ok1 || !ok2 || dot < 0 || dot == len(rest)-1 {
		return "", false
	}
	for _, c := range rest[dot+1:] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	key := rest[:dot]
	return key, checkKey(key) == nil
}

// Dir returns the absolute path of the folder holding the store's files.
func (s *FileStore) Dir() string { return s.dir }

// Load returns the token saved under key. A missing file yields an error matching
// ErrNotFound; a file that is not a valid token record (unparsable, too large,
// or failing Token.Validate) yields one matching ErrCorrupt, which names the file
// but never quotes its content.
func (s *FileStore) Load(ctx context.Context, key string) (Token, error) {
	if err := checkKey(key); err != nil {
		return Token{}, err
	}
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	return readTokenFile(s.tokenPath(key))
}

// Save writes tok under key, atomically, with mode 0600. It rejects a tok that
// fails Token.Validate. When the stored token is valid and newer than tok, Save
// keeps it and returns an error matching ErrNewerToken; a corrupt record is
// replaced. The compare and the write are one step for every process sharing
// the folder. ctx bounds the wait for that step, not the step itself.
//
// Save does not take the lock handed out by Lock, so a caller holding Lock on
// key may Save it.
func (s *FileStore) Save(ctx context.Context, key string, tok Token) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := tok.Validate(); err != nil {
		return fmt.Errorf("wxtoken: file store: save %s: %w", key, err)
	}
	if err := s.saveLocked(ctx, key, tok); err != nil {
		return err
	}
	// After the lock is released: a sweep reads the whole folder.
	s.maybeSweep(time.Now())
	return nil
}

// saveLocked compares and writes under key's save lock.
func (s *FileStore) saveLocked(ctx context.Context, key string, tok Token) error {
	release, err := s.lockSave(ctx, key)
	if err != nil {
		return err
	}
	defer release()

	path := s.tokenPath(key)
	old, err := readTokenFile(path)
	switch {
	case err == nil && old.NewerThan(tok, time.Now()):
		return fmt.Errorf("%w: %s", ErrNewerToken, path)
	case err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt):
		// Without the current record the newest-wins promise cannot be kept.
		return fmt.Errorf("wxtoken: file store: save %s: %w", key, err)
	}
	return s.writeAtomic(key, path, tok)
}

// lockSave takes the in-process and then the cross-process save lock of key.
func (s *FileStore) lockSave(ctx context.Context, key string) (release func(), err error) {
	unlock, err := s.lock(ctx, &s.saveLocks, key, saveLock)
	if err != nil {
		return nil, fmt.Errorf("wxtoken: file store: save %s: %w", key, err)
	}
	return unlock, nil
}

// lock takes key's lock of kind within the process (in), then across processes.
// The returned release is idempotent.
func (s *FileStore) lock(ctx context.Context, in *keyLocks, key string, kind lockKind) (release func(), err error) {
	releaseIn, err := in.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	releaseFile, err := lockFile(ctx, s.dir, key, kind)
	if err != nil {
		releaseIn()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			releaseFile()
			releaseIn()
		})
	}, nil
}

// writeAtomic replaces path with tok's record so that readers see either the old
// or the new file, never a partial one, even after a crash.
func (s *FileStore) writeAtomic(key, path string, tok Token) (err error) {
	// UTC gives the same "...Z" form the Node recipe writes.
	tok.CreateTime = tok.CreateTime.UTC()
	data, err := json.Marshal(tok)
	if err != nil {
		return fmt.Errorf("wxtoken: file store: save %s: %w", key, err)
	}
	f, err := os.CreateTemp(s.dir, "."+key+".*.tmp")
	if err != nil {
		return fmt.Errorf("wxtoken: file store: save %s: %w", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // may already be closed; the error is the first failure
			_ = os.Remove(tmp)
		}
	}()
	if err = writeSyncClose(f, data); err != nil {
		return fmt.Errorf("wxtoken: file store: save %s: %w", key, err)
	}
	if s.beforeRename != nil {
		if err = s.beforeRename(tmp); err != nil {
			return err
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("wxtoken: file store: save %s: %w", key, err)
	}
	if err := s.syncer.sync(); err != nil {
		// The record is in place, but a crash may lose it: the caller must
		// not count on it.
		return fmt.Errorf("wxtoken: file store: save %s: sync folder: %w", key, err)
	}
	return nil
}

// writeSyncClose writes data to the new file f, with mode 0600 whatever the
// umask took away, and makes it durable before closing it.
func writeSyncClose(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// Lock takes the exclusive lock of key shared by every process using the
// folder, waiting until it is free or ctx ends; in the latter case the error
// matches ctx.Err(). Two holders exclude each other whether they are in
// different processes or in the same one.
//
// lease is accepted for the Locker interface but not used: the operating system
// releases the lock when the holding process exits or dies, which is what a lease
// guards against; a holder that is alive but stuck keeps the lock. File locks on
// network file systems are only as reliable as those systems make them.
//
// The returned unlock is idempotent and ignores its context.
func (s *FileStore) Lock(ctx context.Context, key string, lease time.Duration) (unlock func(context.Context) error, err error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	release, err := s.lock(ctx, &s.fetchLocks, key, fetchLock)
	if err != nil {
		return nil, fmt.Errorf("wxtoken: file store: lock %s: %w", key, err)
	}
	return func(context.Context) error { release(); return nil }, nil
}

// lockKind tells a key's two locks apart: a Client that holds the fetch lock
// of a key saves it, which takes the save lock.
type lockKind int

const (
	fetchLock lockKind = 1 + iota
	saveLock
)

// pollLock calls try until it takes the lock or fails, or ctx ends.
func pollLock(ctx context.Context, try func() (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timer := time.NewTimer(lockRetryDelay)
	defer timer.Stop()
	for {
		ok, err := try()
		if err != nil || ok {
			return err
		}
		timer.Reset(lockRetryDelay)
		// Done is consulted only after a failed attempt; tests rely on that
		// to know a Lock is waiting.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

func (s *FileStore) tokenPath(key string) string {
	return filepath.Join(s.dir, key+".json")
}

// checkKey accepts only keys that are plain, visible file name stems: no path
// separators, no "..", no leading dot, nothing outside [A-Za-z0-9._-].
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > maxKeyLen:
		return fmt.Errorf("%w: %d bytes long, the limit is %d", ErrInvalidKey, len(key), maxKeyLen)
	case key[0] == '.':
		return fmt.Errorf("%w %q: starts with a dot", ErrInvalidKey, key)
	}
	for i := 0; i < len(key); i++ {
		if !keyByte(key[i]) {
			return fmt.Errorf("%w %q: byte %d is not one of A-Z a-z 0-9 . _ -", ErrInvalidKey, key, i)
		}
		if key[i] == '.' && i > 0 && key[i-1] == '.' {
			return fmt.Errorf("%w %q: contains \"..\"", ErrInvalidKey, key)
		}
	}
	return nil
}

func keyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// readTokenFile loads one record, classifying failures as ErrNotFound,
// ErrCorrupt (anything but a regular file is corrupt) or a wrapped I/O error.
func readTokenFile(path string) (Token, error) {
	f, err := openRegular(path)
	if err != nil {
		return Token{}, openTokenError(path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFileSize+1))
	if err != nil {
		return Token{}, fmt.Errorf("wxtoken: file store: read %s: %w", path, err)
	}
	return decodeTokenAt(path, data)
}

// openTokenError classifies a failure to open the record at path: ErrNotFound
// when it is absent, ErrCorrupt when it is not a regular file.
func openTokenError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s", ErrNotFound, path)
	case errors.Is(err, errNotRegular):
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	default:
		return fmt.Errorf("wxtoken: file store: %w", err)
	}
}

// decodeTokenAt decodes the content of the record at path, which it names in
// the ErrCorrupt it returns for a bad one.
func decodeTokenAt(path string, data []byte) (Token, error) {
	tok, err := decodeTokenFile(data)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return tok, nil
}

// decodeTokenFile parses a record and checks it with Token.Validate. Its errors
// describe what is wrong without quoting the input, which may hold a token:
// encoding/json and time both echo offending values in their messages.
func decodeTokenFile(data []byte) (Token, error) {
	if len(data) > maxTokenFileSize {
		return Token{}, fmt.Errorf("larger than %d bytes", maxTokenFileSize)
	}
	var tok Token
	if err := json.Unmarshal(data, &tok); err != nil {
		return Token{}, describeJSONError(err)
	}
	if err := tok.Validate(); err != nil {
		return Token{}, err
	}
	return tok, nil
}

func describeJSONError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var parse *time.ParseError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Errorf("field %s is not a %s", typ.Field, typ.Type)
	case errors.As(err, &typ):
		return errors.New("not a JSON object")
	case errors.As(err, &parse):
		return errors.New("createTime is not an RFC 3339 time")
	default:
		return errors.New("not a valid token record")
	}
}

// errNotRegular is matched by the error openRegular returns for a path that
// holds something other than a regular file.
var errNotRegular = errors.New("not a regular file")

func notRegular(mode fs.FileMode) error {
	what := "of an unknown type"
	switch t := mode.Type(); {
	case t&fs.ModeSymlink != 0:
		what = "a symbolic link"
	case t&fs.ModeDir != 0:
		what = "a directory"
	case t&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case t&fs.ModeSocket != 0:
		what = "a socket"
	case t&fs.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("%w: it is %s", errNotRegular, what)
}
