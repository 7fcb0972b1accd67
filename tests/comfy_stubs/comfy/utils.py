"""Stand-in for comfy.utils: ProgressBar with the real signature, recording every report."""

PROGRESS_UPDATES = []  # (node_id, value, total) per report, for assertions
PROGRESS_BAR_HOOK = None


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0
        self.node_id = node_id

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        PROGRESS_UPDATES.append((self.node_id, self.current, self.total))

    def update(self, value):
        self.update_absolute(self.current + value)
