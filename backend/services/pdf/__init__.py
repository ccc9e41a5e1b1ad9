"""What a PDF carries: the streaming keyword scan (``scan``), the deep qpdf inspection on
completion (``inspect``), and the policy that turns findings into a verdict (``policy``).
The other modules are their parts: PDF syntax, values, structure, stream bodies and
inflation, the judgement of actions, and the object walk."""
