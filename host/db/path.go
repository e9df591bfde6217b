package db

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest child name a folder accepts, in bytes.
const MaxNameLen = 255

// MaxPathDepth bounds how many names a path may have.
const MaxPathDepth = 128

// splitPath turns "/a/b/c" (or "a/b/c", "/a//b/", "/") into its names.
// "." names are dropped; ".." and invalid names are rejected, so a path
// can never climb above the root.
func splitPath(path string) ([]string, error) {
	parts := strings.Split(path, "/")
	comps := make([]string, 0, len(parts))
	for _, p := range parts {
		if p == "" || p == "." {
			continue
		}
		if err := checkName(p); err != nil {
			return nil, fmt.Errorf("path %q: %w", path, err)
		}
		comps = append(comps, p)
	}
	if len(comps) > MaxPathDepth {
		return nil, fmt.Errorf("path %q: deeper than %d: %w", path, MaxPathDepth, ErrInvalidPath)
	}
	return comps, nil
}

// checkName validates one child name.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("name %q: %w", name, ErrInvalidPath)
	case len(name) > MaxNameLen:
		return fmt.Errorf("name longer than %d bytes: %w", MaxNameLen, ErrInvalidPath)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL: %w", name, ErrInvalidPath)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not UTF-8: %w", name, ErrInvalidPath)
	}
	return nil
}

// joinPath is the inverse of splitPath: "/" for no names.
func joinPath(comps []string) string {
	return "/" + strings.Join(comps, "/")
}

// childPath appends a name to an absolute path.
func childPath(parent, name string) string {
	if parent == "/" || parent == "" {
		return "/" + name
	}
	return parent + "/" + name
}
