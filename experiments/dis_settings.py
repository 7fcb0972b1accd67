"""How much better would the flow base be with other OpenCV DIS settings? PSNR of the warped
average (motion fade on, flows at the frames' own size) on the config's held-out validation
triplets, whole frames and the flow-failure region (the region of the default flows, so every
row is scored on the same pixels), and the DIS time per triplet (both directions).

    .venv/bin/python -m experiments.dis_settings --config configs/train/small-own.json
    .venv/bin/python -m experiments.dis_settings --config configs/train/small-own.json --scale 1  # full size
"""


from .flow_methods import grey_method, print_table, score_flows, set_opencv_threads
from .validation_options import load_validation_config, validation_arguments

# name -> setters applied to OpenCV's MEDIUM preset (finest scale 1, patch 8, stride 3,
# 25 gradient-descent iterations, 5 variational iterations, alpha 20, delta 5, gamma 10)
SETTINGS = {
    "MEDIUM (shipped)": {},
    "finest scale 0": {"FinestScale": 0},
    "finest scale 0, alpha 10": {"FinestScale": 0, "VariationalRefinementAlpha": 10.0},
    "finest scale 0, 10 variational iterations": {"FinestScale": 0, "VariationalRefinementIterations": 10},
    "finest scale 0, alpha 40": {"FinestScale": 0, "VariationalRefinementAlpha": 40.0},
    "alpha 10, 10 variational iterations": {"VariationalRefinementAlpha": 10.0,
                                            "VariationalRefinementIterations": 10},
}


def configured_dis(setters: dict):
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for name, value in setters.items():
        getattr(dis, "set" + name)(value)
    return dis


def main() -> None:
    args = validation_arguments(__doc__.split("\n")[0]).parse_args()
    config = load_validation_config(args)
    set_opencv_threads(args.threads)
    chosen = {name: grey_method(lambda setters=setters: configured_dis(setters))
              for name, setters in SETTINGS.items()}
    print_table(score_flows(config, chosen), "DIS settings")


if __name__ == "__main__":
    main()
