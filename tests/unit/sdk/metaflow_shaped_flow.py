# mypy: allow-untyped-defs
"""A flow written for Metaflow; only the import line was changed to kflow.

It uses every `self.next` form of METAFLOW.md §1.2 (linear, static split,
foreach, nested foreach, joins, switch), parameters of each type, constants,
`merge_artifacts`, `current`, and Metaflow's step and flow decorators.
"""

from kflow import (
    FlowSpec,
    JSONType,
    Parameter,
    batch,
    catch,
    current,
    environment,
    kubernetes,
    project,
    resources,
    retry,
    schedule,
    step,
    timeout,
)


@project(name="movie_recs")
@schedule(cron="0 6 ? * MON-FRI *", timezone="Europe/Amsterdam")
class MovieStatsFlow(FlowSpec):
    """Score genres and models, then pick how to publish."""

    genre = Parameter("genre", help="Only movies of this genre", default="Sci-Fi")
    top_k = Parameter("top-k", help="How many to keep", default=2)
    weights = Parameter("weights", type=JSONType, default='{"rating": 0.7, "votes": 0.3}')
    publish = Parameter("publish", default=False)
    MODELS = ["linear", "tree"]  # noqa: RUF012 - a constant as Metaflow users write it

    @step
    def start(self):
        self.movies = [("Alien", "Sci-Fi", 8.5), ("Up", "Comedy", 8.3), ("Dune", "Sci-Fi", 8.0),
                       ("Heat", "Drama", 8.3)]
        self.genres = sorted({g for _, g, _ in self.movies})
        self.next(self.count, self.by_genre)

    @retry(times=2)
    @step
    def count(self):
        self.total = len(self.movies)
        self.next(self.join)

    @step
    def by_genre(self):
        self.next(self.score, foreach="genres")

    @batch(memory=60000, cpu=1, queue="ml-queue")
    @step
    def score(self):
        self.current_genre = self.input
        self.next(self.fit, foreach="MODELS")

    @timeout(minutes=10)
    @resources(memory=4096, gpu=1)
    @kubernetes(cpu=0.5, memory=2048, node_selector="pool=gpu")
    @environment(vars={"OMP_NUM_THREADS": 1})
    @step
    def fit(self):
        ratings = [r for _, g, r in self.movies if g == self.current_genre]
        self.fit_score = (self.input, round(sum(ratings) * self.weights["rating"], 2))
        self.stack = self.foreach_stack()
        self.next(self.join_models)

    @step
    def join_models(self, inputs):
        self.genre_scores = [i.fit_score for i in inputs]
        self.merge_artifacts(inputs, include=["current_genre"])
        self.next(self.join_genres)

    @step
    def join_genres(self, inputs):
        self.scores = {i.current_genre: i.genre_scores for i in inputs}
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, exclude=["scores"])
        self.scores = inputs.join_genres.scores
        self.next(self.decide)

    @step
    def decide(self):
        self.mode = "publish" if self.publish else "dry_run"
        self.next({"publish": self.publish_results, "dry_run": self.dry_run}, condition="mode")

    @catch(var="publish_failure")
    @retry
    @step
    def publish_results(self):
        self.published = True
        self.next(self.end)

    @step
    def dry_run(self):
        self.published = False
        self.next(self.end)

    @step
    def end(self):
        self.summary = f"{current.flow_name}: {self.total} movies, published={self.published}"


if __name__ == "__main__":
    MovieStatsFlow()
