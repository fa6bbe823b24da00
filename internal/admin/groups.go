package admin

// groups is the API's groups area.
type groups struct{ a *API }

func (p groups) routes() []route { return nil }
