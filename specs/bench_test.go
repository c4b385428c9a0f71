package specs

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"
)

func BenchmarkParse(b *testing.B) {
	data := []byte(valid + "  rpcEncryption: enabled\n  tls: {ttl: 2160h, minVersion: \"1.3\"}\n")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("f.yaml", data, DefaultDefaults()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad10000(b *testing.B) {
	fsys := fstest.MapFS{}
	for i := range 10000 {
		fsys[fmt.Sprintf("instances/db-%05d.yaml", i)] = &fstest.MapFile{Data: []byte(instanceYAML(fmt.Sprintf("db-%05d", i)))}
	}
	for b.Loop() {
		f, err := Load(context.Background(), fsys, "instances")
		if err != nil || len(f.Instances) != 10000 {
			b.Fatalf("loaded %d instances, err %v", len(f.Instances), err)
		}
	}
}
