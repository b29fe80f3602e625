package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// snapshotDir packs the bundle files of dir (those bundleFile keeps, outside
// hidden directories) into a .tar.gz, byte for byte. A directory bundle is
// read once, into this snapshot, and everything else works on it: the
// signature check, the compilation, and what is handed on to RAs, which is
// therefore the bundle in force, signatures included, even if the
// directory changes meanwhile.
func snapshotDir(dir string, maxBytes int64) ([]byte, error) {
	files, err := dirBundleFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	var total int64
	for _, f := range files {
		// Read at most what is left of the budget (and one byte more, to
		// tell): a huge (or sparse) file is refused without being read.
		b, err := readAtMost(f, maxBytes-total+1)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", dir, err)
		}
		if total += int64(len(b)); total > maxBytes {
			return nil, fmt.Errorf("bundle %s is larger than %d bytes", dir, maxBytes)
		}
		rel, err := filepath.Rel(dir, f)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Name: "/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readAtMost reads up to n bytes of the file name.
func readAtMost(name string, n int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// dirBundleFiles lists, sorted, the files of a directory bundle: the
// regular files bundleFile keeps, outside hidden directories. A symbolic
// link, a FIFO or a device is not part of a bundle. The snapshot that is
// loaded and the fingerprint Watch compares (watch.go) both use it, so
// that what is loaded and what is watched agree.
func dirBundleFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && bundleFile(p) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}
