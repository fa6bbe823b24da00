package roster

// SetMaxItems changes MaxItems of a registered module, for the items added
// from then on (a configuration reload); zero selects DefaultMaxItems.
// It is safe to call while the server runs; a roster already larger keeps
// its items.
func (m *Module) SetMaxItems(n int) {
	if n == 0 {
		n = DefaultMaxItems
	}
	m.maxItems.Store(int64(n))
}
