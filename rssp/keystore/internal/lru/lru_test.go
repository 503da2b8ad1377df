package lru

import "testing"

func TestCache(t *testing.T) {
	c := New[string, int](2)
	c.Add("a", 1)
	c.Add("b", 2)
	if v, ok := c.Get("a"); !ok || v != 1 { // a is now most recent
		t.Fatalf("Get(a) = %v, %v", v, ok)
	}
	c.Add("c", 3) // evicts b
	tests := []struct {
		key    string
		want   int
		wantOK bool
	}{
		{"a", 1, true},
		{"b", 0, false},
		{"c", 3, true},
	}
	for _, tt := range tests {
		if v, ok := c.Get(tt.key); ok != tt.wantOK || v != tt.want {
			t.Errorf("Get(%s) = %v, %v; want %v, %v", tt.key, v, ok, tt.want, tt.wantOK)
		}
	}
	c.Add("c", 4)
	if v, _ := c.Get("c"); v != 4 {
		t.Errorf("update: Get(c) = %d", v)
	}
	c.Remove("a")
	if c.Len() != 1 {
		t.Errorf("Len = %d after Remove, want 1", c.Len())
	}
	c.Purge()
	if c.Len() != 0 {
		t.Errorf("Len = %d after Purge", c.Len())
	}
	if New[int, int](0).max != 1 {
		t.Error("size 0 not raised to 1")
	}
}
