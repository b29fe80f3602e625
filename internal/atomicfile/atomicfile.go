// Package atomicfile replaces files so that a crash leaves the old content
// or the new, never a part: the new content goes to a fresh temporary file
// in the same directory, is synced, then renamed over the target.
package atomicfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
)

// Write replaces path with data, with permissions perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
}

// WriteFunc replaces path with what write writes, with permissions perm.
// If write fails, path is left as it was and the temporary file removed.
func WriteFunc(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	// CreateTemp makes the file 0600, so a secret is never readable by
	// others on its way to perm, whatever a leftover file had.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
