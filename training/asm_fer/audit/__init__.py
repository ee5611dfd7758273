"""A dataset's labels judged through a bundle, and the peers (cleanlab) scored beside the verdict."""
