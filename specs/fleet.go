package specs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Fleet is every instance file under one directory, parsed and checked
// across files.
type Fleet struct {
	// Instances are the valid instances, sorted by name.
	Instances []*Instance
	// Errors are the problems found, sorted by file and line. A file with
	// any error contributes no instance.
	Errors ErrorList
	// Files are the instance files read, sorted.
	Files []string

	broken map[string]bool // files with errors
	held   map[string]bool // names defined in more than one place
	dir    string
	parsed map[string]parsed // what each file gave, for Reload
	loader loader
}

// parsed is what one file gave: its instances, or its errors.
type parsed struct {
	instances []*Instance
	errs      ErrorList
}

// Broken reports whether file had errors, so that the instances it held
// before must be kept at their last applied state.
func (f *Fleet) Broken(file string) bool { return f.broken[file] }

// Held reports whether name was defined more than once, so that no
// definition of it is trusted.
func (f *Fleet) Held(name string) bool { return f.held[name] }

// Option configures Load.
type Option func(*loader)

type loader struct {
	defaults    Defaults
	parallelism int
}

// WithDefaults sets the defaults applied to every instance (DefaultDefaults
// otherwise).
func WithDefaults(d Defaults) Option { return func(l *loader) { l.defaults = d } }

// WithParallelism sets how many files are parsed at once (GOMAXPROCS
// otherwise).
func WithParallelism(n int) Option {
	return func(l *loader) {
		if n > 0 {
			l.parallelism = n
		}
	}
}

// Load parses every .yaml and .yml file under dir in fsys (hidden files and
// directories are skipped) and checks that instance names are unique across
// files.
//
// Problems with files go to Fleet.Errors, and every other file still loads:
// one bad file costs its own instances, not the run. The returned error is
// for what stops the whole load: dir missing or unreadable, or ctx done.
func Load(ctx context.Context, fsys fs.FS, dir string, opts ...Option) (*Fleet, error) {
	l := loader{defaults: DefaultDefaults(), parallelism: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(&l)
	}
	files, err := instanceFiles(fsys, dir)
	if err != nil {
		return nil, err
	}
	results, err := l.parseFiles(ctx, fsys, files, false)
	if err != nil {
		return nil, err
	}
	parsed := make(map[string]parsed, len(results))
	for file, r := range results {
		parsed[file] = r.parsed
	}
	return assemble(dir, files, parsed, l), nil
}

// Reload returns the fleet with the files named in changed (paths from
// the fleet root, as sources.ChangeLister gives them: added, modified or
// deleted) read again from fsys, and every other file as f had it: what a
// commit that touches a few files costs, instead of a Load of them all.
// Paths outside f's directory, or that are not instance files, are
// ignored. The result is what Load of fsys would return, provided fsys
// differs from what f was loaded from in the changed files only. f is not
// modified.
func (f *Fleet) Reload(ctx context.Context, fsys fs.FS, changed []string) (*Fleet, error) {
	var reread []string
	for _, p := range changed {
		if isInstanceFile(f.dir, p) {
			reread = append(reread, p)
		}
	}
	fresh, err := f.loader.parseFiles(ctx, fsys, reread, true)
	if err != nil {
		return nil, err
	}
	parsed := make(map[string]parsed, len(f.parsed)+len(reread))
	for file, r := range f.parsed {
		parsed[file] = r
	}
	for file, r := range fresh {
		if r.missing {
			delete(parsed, file)
		} else {
			parsed[file] = r.parsed
		}
	}
	files := make([]string, 0, len(parsed))
	for file := range parsed {
		files = append(files, file)
	}
	sort.Strings(files)
	return assemble(f.dir, files, parsed, f.loader), nil
}

// isInstanceFile reports whether p is a file Load would read under dir.
func isInstanceFile(dir, p string) bool {
	rel, ok := strings.CutPrefix(p, dir+"/")
	if dir == "." {
		rel, ok = p, true
	}
	if !ok || rel == "" {
		return false
	}
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	ext := strings.ToLower(path.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

// reparsed is a file read again: its result, or that it is gone.
type reparsed struct {
	parsed
	missing bool
}

// parseFiles parses files in parallel. With deletions, a file that does
// not exist (deleted, for Reload) is reported missing.
func (l *loader) parseFiles(ctx context.Context, fsys fs.FS, files []string, deletions bool) (map[string]reparsed, error) {
	results := make([]reparsed, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(l.parallelism, len(files)) {
		wg.Go(func() {
			for i := range next {
				if deletions {
					if _, err := fs.Stat(fsys, files[i]); errors.Is(err, fs.ErrNotExist) {
						results[i].missing = true
						continue
					}
				}
				results[i].instances, results[i].errs = l.parseFile(fsys, files[i])
			}
		})
	}
feed:
	for i := range files {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load instances: %w", err)
	}
	out := make(map[string]reparsed, len(files))
	for i, file := range files {
		out[file] = results[i]
	}
	return out, nil
}

// assemble builds the fleet from each file's result, files sorted.
func assemble(dir string, files []string, results map[string]parsed, l loader) *Fleet {
	f := &Fleet{broken: map[string]bool{}, held: map[string]bool{}, dir: dir, parsed: make(map[string]parsed, len(files)), loader: l}
	for _, file := range files {
		r := results[file]
		f.Files = append(f.Files, file)
		f.parsed[file] = r
		if len(r.errs) > 0 {
			f.broken[file] = true
			f.Errors = append(f.Errors, r.errs...)
			continue
		}
		f.Instances = append(f.Instances, r.instances...)
	}
	f.dropDuplicates()
	sort.SliceStable(f.Errors, func(i, j int) bool {
		a, b := f.Errors[i], f.Errors[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return f
}

func (l *loader) parseFile(fsys fs.FS, file string) ([]*Instance, ErrorList) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, ErrorList{{File: file, Message: fmt.Sprintf("read file: %v", err), Fix: "check the file's permissions"}}
	}
	ins, err := Parse(file, data, l.defaults)
	if err != nil {
		var list ErrorList
		if errors.As(err, &list) {
			return nil, list
		}
		return nil, ErrorList{{File: file, Message: err.Error()}}
	}
	return ins, nil
}

// dropDuplicates removes every instance whose name is defined in more than
// one file, with an error at each repeat naming the first definition. Files
// are read in sorted order, so the first is the one in the earliest file.
func (f *Fleet) dropDuplicates() {
	sort.SliceStable(f.Instances, func(i, j int) bool { return f.Instances[i].Metadata.Name < f.Instances[j].Metadata.Name })
	kept := f.Instances[:0]
	for i := 0; i < len(f.Instances); {
		j := i + 1
		for j < len(f.Instances) && f.Instances[j].Metadata.Name == f.Instances[i].Metadata.Name {
			j++
		}
		if j-i == 1 {
			kept = append(kept, f.Instances[i])
			i = j
			continue
		}
		first := f.Instances[i]
		f.held[first.Metadata.Name] = true
		for _, dup := range f.Instances[i+1 : j] {
			f.Errors = append(f.Errors, &Error{File: dup.File, Line: dup.Line, Field: "metadata.name",
				Message: fmt.Sprintf("instance %q is also defined in %s:%d", dup.Metadata.Name, first.File, first.Line),
				Fix:     "names must be unique in the fleet: rename or remove one of them (both are held until then)"})
		}
		i = j
	}
	clear(f.Instances[len(kept):])
	f.Instances = kept
}

func instanceFiles(fsys fs.FS, dir string) ([]string, error) {
	var files []string
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if ext := strings.ToLower(path.Ext(p)); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read instances: no directory %q in the fleet (put instance files under it, or name the directory that holds them): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read instances: %w", err)
	}
	sort.Strings(files)
	return files, nil
}
