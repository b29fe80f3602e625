// Package policies ships the default policy bundle inside the binary, so
// that `policyca init` can write an editable copy into a new state
// directory without the source tree.
package policies

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed all:rego
var bundle embed.FS

// Default is the default bundle (the files of policies/rego).
func Default() fs.FS {
	sub, err := fs.Sub(bundle, "rego")
	if err != nil {
		panic(err) // the embedded tree always has rego/
	}
	return sub
}

// WriteDefault writes the default bundle into dir (created 0700, files
// 0600), refusing to overwrite existing files.
func WriteDefault(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return fs.WalkDir(Default(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			if p == "." {
				return nil
			}
			return os.MkdirAll(dst, 0o700)
		}
		b, err := fs.ReadFile(Default(), p)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}
