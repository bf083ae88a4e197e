"core.cached_build with real processes: two builders of one cache give one committed cache, built once"
import os, sys, json, time, subprocess, textwrap
from pathlib import Path
import numpy as np
from fastai_memstream.core import read_manifest, open_array, verify_files, MANIFEST

SCRIPT = textwrap.dedent("""
    import sys, os, time, json
    from pathlib import Path
    import numpy as np
    from fastai_memstream.core import cached_build, ArrayWriter, write_manifest, fingerprint, best_dtype
    target, log, start = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    def build(tmp):
        with open(log, 'a') as f: f.write(f'{os.getpid()}\\n')
        with ArrayWriter(tmp/'sq.bin', np.uint32) as w:
            for i in range(10):
                w.write(np.arange(i*1000, (i+1)*1000)**2); time.sleep(0.1)   # a build that takes a second
        write_manifest(tmp, 'demo.squares', 1, fingerprint(10_000), arrays={'sq': w.entry}, counts={'n': 10_000})
    while time.time() < start: time.sleep(0.005)
    m, built = cached_build(target, 'demo.squares', fingerprint(10_000), build)
    print(json.dumps({'built': built, 'created': m['created'], 'fp': m['fingerprint']}))
""")

def test_two_processes_one_cache(tmp_path):
    target,log = tmp_path/'sq',tmp_path/'builds.log'
    start = time.time() + 3   # both processes wait for the same instant after their imports
    ps = [subprocess.Popen([sys.executable, '-c', SCRIPT, str(target), str(log), str(start)], stdout=subprocess.PIPE, text=True)
          for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in ps]
    assert all(p.returncode == 0 for p in ps)
    assert sorted(o['built'] for o in outs) == [False, True]            # one built, the other waited and reused
    assert len(log.read_text().split()) == 1                            # the build function ran once
    assert outs[0]['created'] == outs[1]['created'] and outs[0]['fp'] == outs[1]['fp']
    m = read_manifest(target, 'demo.squares'); verify_files(target, m, checksums=True)
    np.testing.assert_array_equal(open_array(target, m, 'sq'), np.arange(10_000, dtype=np.uint32)**2)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.') and not p.name.endswith('.lock')] == []
