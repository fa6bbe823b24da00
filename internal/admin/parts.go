package admin

// parts lists the API's areas, one file each.
func (a *API) parts() []area {
	return []area{
		status{a},
		accounts{a},
		sessions{a},
		rooms{a},
		groups{a},
		messages{a},
		events{a},
	}
}
