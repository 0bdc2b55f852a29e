"""Resume: a flow whose middle step fails until its input is fixed.

`validate` reads its quality gate (MIN_ROWS) from the Secret `resume-example`
(`@kubernetes(secrets=...)`). With a gate the data cannot pass, the run fails in
`validate`; fix the Secret, then resume the run in place — `start` and `load` are
kept, `validate` and what follows run again:

    kubectl create secret generic resume-example --from-literal=MIN_ROWS=1000
    python examples/flows/resume_flow.py run          # fails in validate
    kubectl create secret generic resume-example --from-literal=MIN_ROWS=50 \\
        --dry-run=client -o yaml | kubectl apply -f -
    python examples/flows/resume_flow.py resume       # or: kubectl patch fr <run> \\
        # --type merge -p '{"spec":{"resume":{"attempt":1}}}'
"""

import os

from kflow import FlowSpec, Parameter, kubernetes, step


class ResumeFlow(FlowSpec):
    """Load rows, check them against a gate from a Secret, summarise them."""

    rows = Parameter("rows", default=100, help="rows to load")

    @step
    def start(self):
        self.next(self.load)

    @step
    def load(self):
        """The (expensive, in real life) part a resume must not redo."""
        self.data = [i * 0.5 for i in range(self.rows)]
        print(f"loaded {len(self.data)} rows")
        self.next(self.validate)

    @kubernetes(secrets=["resume-example"])
    @step
    def validate(self):
        """Fails while the Secret's MIN_ROWS asks for more rows than there are."""
        minimum = int(os.environ.get("MIN_ROWS", "0"))
        if len(self.data) < minimum:
            raise ValueError(f"only {len(self.data)} rows, the gate asks for {minimum}: "
                             "fix MIN_ROWS in the Secret resume-example, then resume")
        self.gate = minimum
        self.next(self.summarise)

    @step
    def summarise(self):
        self.mean = sum(self.data) / len(self.data)
        print(f"mean {self.mean} over {len(self.data)} rows (gate {self.gate})")
        self.next(self.end)

    @step
    def end(self):
        """`run.data.mean`."""


if __name__ == "__main__":
    ResumeFlow()
