"""What each command does, as one library call: settings in, result out.

A command of `cli/` parses its options into one of these requests, calls the function
beside it and prints the result; Python users can make the same call. The policy (which
learner, which encoder, what is refused) lives here and in `fewshot.build`.
"""
