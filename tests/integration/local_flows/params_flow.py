"""Local runs: parameters reach the start step and every step after it."""

from kflow import FlowSpec, Parameter, step


class ParamsFlow(FlowSpec):
    """start reads two parameters; end combines them."""

    alpha = Parameter("alpha", default=0.1, help="a float")
    label = Parameter("label", default="none", help="a string")

    @step
    def start(self):
        self.seen_alpha = self.alpha
        self.next(self.end)

    @step
    def end(self):
        self.summary = f"{self.label}:{self.alpha * 2}"
        print(self.summary)


if __name__ == "__main__":
    ParamsFlow()
