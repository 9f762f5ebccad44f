"""Settings of the tiny runs the UX tests (issue 15) start from the command line: a supernet of
attentivenas-tiny on the built-in digits, a few steps on the CPU."""

TINY_TRAIN = ["run.device=cpu", "space=attentivenas-tiny", "data.path=digits", "data.image_size=12",
              "data.train_subset=256", "train.epochs=1", "train.batch_size=32", "train.workers=0",
              "train.max_steps=4", "sampler.kind=uniform", "eval.bn_batches=1", "eval.max_batches=1",
              "log.tensorboard=false", "log.every_steps=2", "run.threads=1"]

# a stage-2 command's settings that score an Arch in a moment
FAST_SCORING = ["--bn-batches", "1", "--max-batches", "1", "--device", "cpu", "--threads", "1"]
