// Package learner manages the fleet's members: non-voting learners that
// follow the committed log and serve dumps, and the promotion, demotion and
// removal of members.
//
// Not built yet: this is the work of the loggers-and-learners issue. A
// member already starts as a learner with --role learner --join.
package learner
