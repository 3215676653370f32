import sys, json; sys.path.insert(0,'.')
import numpy as np, torch
torch.set_num_threads(1)
from resdit import ResDiTConfig, generate
from resdit.toy import load_pipeline
from resdit.toy.world import window_prompt
pipe=load_pipeline(); pipe.set_progress_bar_config(disable=True)
W=pipe.world; base=tuple(pipe.base_size)
P=json.load(open('results/toy-v2/probes/prompts_striped16.json'))
scale=int(sys.argv[1]); tag=sys.argv[2]; changes=json.loads(sys.argv[3]); lp=len(sys.argv)>4
h=w=base[0]*scale
noise=torch.stack([torch.randn(3,h,w,generator=torch.Generator().manual_seed(500+i)) for i in range(16)])
cfg=ResDiTConfig(base_size=base,mode="resdit",mu="base",**changes)
ims=generate(pipe,P,cfg,h,w,20,latents=noise,local_prompt=[window_prompt(p,W) for p in P] if lp else None).numpy()
np.save(f'results/toy-v2/probes/ims_{scale}x_{tag}.npy',ims)
