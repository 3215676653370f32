import sys, json; sys.path.insert(0,'.')
import numpy as np
from analysis.scoring import score_case
from resdit import ResDiTConfig
P=json.load(open('results/toy-v2/probes/prompts_striped16.json'))
cfg=ResDiTConfig(base_size=(32,32),mode='resdit')
for f in sys.argv[1:]:
    ims=np.load(f)
    rows=[score_case(im,p,(32,32),cfg.spec.windows,world='v2',align=cfg.align) for im,p in zip(ims,P)]
    out={k:float(np.nanmean([np.nan if r[k] is None else r[k] for r in rows])) for k in ('correct','fragments','detail','ground_detail','seam')}
    print(f.split('/')[-1], {k:round(v,3) for k,v in out.items()})
