"""High-band energy of x_t over the steps: 4x defaults vs the base size (per-pixel spectral energy in bands)."""
import sys, json; sys.path.insert(0,'.')
import numpy as np, torch
torch.set_num_threads(1)
from resdit import ResDiTConfig, generate
from resdit.toy import load_pipeline, model as toy
pipe=load_pipeline(); pipe.set_progress_bar_config(disable=True)
base=tuple(pipe.base_size)
P=json.load(open('results/toy-v2/probes/prompts_striped16.json'))[:4]
out={}
def bands(img):  # img [B,3,H,W] -> per-band mean energy per pixel
    g=img.mean(1); H,W=g.shape[-2:]
    F=np.abs(np.fft.fft2(g-g.mean((-1,-2),keepdims=True)))**2/(H*W)
    r=np.hypot(np.fft.fftfreq(H)[:,None],np.fft.fftfreq(W)[None,:])
    res={}
    for name,(lo,hi) in {'low<0.03':(0.0,0.03),'mid 0.03-0.2':(0.03,0.2),'stripe 0.21-0.29':(0.21,0.29),'top>0.36':(0.36,0.8)}.items():
        m=(r>lo)&(r<=hi); res[name]=float(F[:,m].sum(-1).mean()/(H*W))
    return res
for scale,tag in [(1,'base'),(4,'resdit')]:
    h=w=base[0]*scale; rec=[]
    def hook(mod,args,kwargs):
        x=kwargs['hidden_states']; rec.append(bands(toy.unpack(x.detach(),h,w).numpy()))
    hd=pipe.transformer.register_forward_pre_hook(hook,with_kwargs=True)
    noise=torch.stack([torch.randn(3,h,w,generator=torch.Generator().manual_seed(500+i)) for i in range(len(P))])
    cfg=ResDiTConfig(base_size=base,mode="resdit",mu="base") if scale>1 else ResDiTConfig(base_size=base,mode="direct")
    final=generate(pipe,P,cfg,h,w,20,latents=noise).numpy()*2-1
    hd.remove(); rec.append(bands(final)); out[tag]=rec
json.dump(out,open('results/toy-v2/probes/traj.json','w'),indent=1)
for k in out['base'][0]:
    print(k); print(' base  ',' '.join(f"{r[k]:.4f}" for r in out['base'])); print(' resdit',' '.join(f"{r[k]:.4f}" for r in out['resdit']))
