// Package pep is the personal eventing service of every account (XEP-0163):
// the part of publish-subscribe (XEP-0060) that clients use on their own
// bare JID — publishing with publish-options, retracting, retrieving items,
// configuring, purging and deleting nodes, affiliations for the whitelist
// access model — with notifications to the contacts and resources that
// asked for them through entity capabilities (XEP-0115), and the last item
// of each node sent when one comes online. OMEMO device lists (XEP-0384),
// avatars (XEP-0084), nicknames (XEP-0172) and bookmarks (XEP-0402) are
// kept here.
package pep
