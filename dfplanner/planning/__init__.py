"""One decision: the planner samples a plan under a scheduling matrix (sampling), steered by a cost
(costs, routes, goal_hold) through guidance, from the state the history holds, and acts on it; every
choice it makes is a setting (settings, presets/)."""
