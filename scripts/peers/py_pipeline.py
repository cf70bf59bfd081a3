#!/usr/bin/env python3
# Written by the Sightline team for its benchmarks (moved here from the team's bench kit); no third-party code, no licence terms.
"""Peer figure: what a Python user would write. OpenCV decode + LiteRT (XNNPACK) SSDLite + NMS, JSON lines on stdout.
usage: py_pipeline.py VIDEO MODEL.tflite THREADS > out.jsonl   (frames/s is printed on stderr)
Needs: pip install ai-edge-litert opencv-python-headless numpy"""
import sys, json, time, math, numpy as np, cv2
from ai_edge_litert.interpreter import Interpreter
video, model, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
it = Interpreter(model_path=model, num_threads=threads); it.allocate_tensors()
inp = it.get_input_details()[0]; outs = it.get_output_details()
# SSD anchors (TF OD API defaults for ssdlite_mobilenet_v2)
def anchors():
    fm=[19,10,5,3,2,1]; mn,mx=0.2,0.95; n=len(fm)
    scales=[mn+(mx-mn)*i/(n-1) for i in range(n)]+[1.0]
    A=[]
    for k,f in enumerate(fm):
        if k==0: specs=[(0.1,1.0),(scales[0],2.0),(scales[0],0.5)]
        else:
            specs=[(scales[k],a) for a in (1.0,2.0,0.5,3.0,1/3)]+[(math.sqrt(scales[k]*scales[k+1]),1.0)]
        for y in range(f):
            for x in range(f):
                cy=(y+0.5)/f; cx=(x+0.5)/f
                for s,a in specs:
                    A.append((cy,cx,s/math.sqrt(a),s*math.sqrt(a)))
    return np.array(A,dtype=np.float32)
AN=anchors()
out=sys.stdout
cap=cv2.VideoCapture(video); i=0; t0=time.perf_counter(); nd=0
while True:
    ok, fr = cap.read()
    if not ok: break
    x = cv2.resize(cv2.cvtColor(fr, cv2.COLOR_BGR2RGB),(300,300)).astype(np.float32)*(2/255.)-1.
    it.set_tensor(inp['index'], x[None]); it.invoke()
    box = it.get_tensor(outs[0]['index']).reshape(-1,4); cls = it.get_tensor(outs[1]['index']).reshape(len(AN),-1)
    sc = 1/(1+np.exp(-cls[:,1:]))
    ycenter=box[:,0]/10*AN[:,2]+AN[:,0]; xcenter=box[:,1]/10*AN[:,3]+AN[:,1]
    h=np.exp(box[:,2]/5)*AN[:,2]; w=np.exp(box[:,3]/5)*AN[:,3]
    s=sc[:,0]; keep=np.where(s>0.3)[0]
    rects=[[float(xcenter[k]-w[k]/2), float(ycenter[k]-h[k]/2), float(w[k]), float(h[k])] for k in keep]
    idx = cv2.dnn.NMSBoxes(rects, [float(s[k]) for k in keep], 0.3, 0.6) if len(keep) else []
    dets=[{"label":"person","score":round(float(s[keep[j]]),4),"box":[round(v,4) for v in rects[j]]} for j in np.array(idx).flatten()]
    nd+=len(dets)
    out.write(json.dumps({"frame":i,"detections":dets})+"\n"); i+=1
dt=time.perf_counter()-t0
print(f"frames={i} detections={nd} seconds={dt:.2f} fps={i/dt:.1f}", file=sys.stderr)
