# det_tiny with the backbone and neck compiled whole (the one line of docs/benchmarks.md,
# "Compiling"); aot_eager: dynamo + AOTAutograd without inductor's minutes of code generation.
_base_ = './det_tiny.py'
custom_hooks = [dict(type='resvariants.CompileModulesHook', modules=('backbone', 'neck'),
                     backend='aot_eager')]
