package module

// WaitPreauthorized waits until the background pre-authorizations of every
// token's current login have ended (tests count service calls).
func (m *Module) WaitPreauthorized() {
	st, err := m.state()
	if err != nil {
		return
	}
	for _, t := range st.tokens {
		t.mu.Lock()
		p := t.preauth
		t.mu.Unlock()
		if p != nil {
			<-p.done
		}
	}
}

// TokenPIN returns the token's own PIN slice (not a copy), so that tests
// can see it wiped.
func (m *Module) TokenPIN(slot SlotID) []byte {
	st, err := m.state()
	if err != nil {
		return nil
	}
	t := st.tokens[slot]
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pin
}
