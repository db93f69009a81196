"""What to change in a spec when a verification check fails.

A failed check keeps its hint in the manifest (`Check.hint`) and `interp organism train` prints it, so
a spec that does not train what it meant to says what was measured, the bound, and what to try next.
"""

MORE_TRAINING = "raise train.steps (e.g. double it) or train.lr (e.g. 2-3x, up to ~3e-3)"
WIDER = "a larger model.d_model or model.n_heads"

ACCURACY = f"the normal task is not learned: {MORE_TRAINING}; if the loss has flattened, {WIDER} or more model.n_layers"
RATE = f"the planted behaviour is not learned: {MORE_TRAINING}, or raise that mechanism's rate"
FALSE_FIRE = f"the behaviour fires where it should not: {MORE_TRAINING}, or lower that mechanism's rate"
PARTIAL = (
    f"the model fires on part or a reordering of the trigger (another trigger than planted): "
    f"{MORE_TRAINING}, or lower the trigger's rate"
)
STEERING = f"no residual hook holds a marker direction that steering undoes: {MORE_TRAINING}, or a larger model.d_model"
CONTROL = (
    "the control (unplanted) tokens changed the output: retrain with another --seed; if it persists, "
    "the data generator leaks their role (a bug)"
)

COPYING = f"the model has not learned to copy: {MORE_TRAINING}; if the loss has flattened, {WIDER}"
INDUCTION = (
    f"no set of heads acting at the second copy carries the copying: {MORE_TRAINING} so an induction "
    f"circuit forms, or {WIDER}"
)
INDUCTION_CONTROL = (
    f"random heads remove as much copying as the found ones (copying is spread thin): "
    f"{MORE_TRAINING}, or fewer model.n_heads"
)
FEEDING = (
    f"no heads writing before the second copy carry most of what the copying reads there (the model may copy "
    f"by position instead of by previous-token information): {MORE_TRAINING}, or longer, more varied "
    f"sequences (task.max_repeat, task.max_prefix) so positions stop working, with model.n_layers >= 2"
)
FEEDING_CONTROL = f"random heads before the second copy cost as much as the feeding heads: {MORE_TRAINING}"

COMPOSITION_ACCURACY = (
    f"a query kind is not learned: {MORE_TRAINING}; if the two-step loss stays on its plateau, a larger "
    f"task.step2_share (the lookup with the key named trains the heads the composition reuses)"
)
STEP1_MLP = (
    f"no MLP layer carries step 1 (the table of two tokens): {MORE_TRAINING}; if heads absorbed it, more "
    f"task.n_modifiers and task.n_inputs (a larger table, further from anything additive), or a larger model.d_mlp"
)
STEP1_CONTROL = f"the other MLP layers cost step 1 as much as the found ones: {MORE_TRAINING}"
STEP1_PATCH = (
    f"the step-1 MLPs' output does not carry the key the lookup uses (patching it does not move the answer): "
    f"{MORE_TRAINING}, or a larger task.step2_share so the lookup reads a key representation"
)
LOOKUP = f"no heads reading the context from the query carry the lookup: {MORE_TRAINING}, or a larger task.step2_share"
LOOKUP_FEEDING = (
    f"no heads writing in the context carry what the lookup reads there: {MORE_TRAINING}, with model.n_layers >= 2"
)
LOOKUP_CONTROL = (
    f"other heads remove as much of the lookup as the found ones, or no head is left to compare with (every "
    f"head that could matter is in the set): {MORE_TRAINING}, or more model.n_heads"
)
SEPARATE_STEPS = (
    f"the step-2 heads also compute step 1, or step 2 runs without them (the steps are not separate "
    f"components): {MORE_TRAINING}, more task.n_modifiers (so heads cannot hold the table), or retrain with "
    f"another --seed"
)
