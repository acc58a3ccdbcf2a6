"""paper_figures: the experiments of Zandieh et al. (NeurIPS 2021) regenerated on the offline substitute data.

``python -m paper_figures [--quick | --smoke | --full]`` runs every experiment and writes, into
``paper_figures/out/`` (git-ignored), one markdown table and one PNG per experiment (PNG only when matplotlib is
installed: the ``figures`` extra) plus ``index.md`` listing them all.  The paper's data cannot be had offline, so
Fashion-MNIST stands in for CIFAR-10, MNIST-5k and Fashion-MNIST for MNIST, and diamonds / CPS1988 for the UCI
regression sets; every table says so.  Not installed with the library (only ``ntk_sketch`` is packaged).

Experiments (one module each, each with ``run(ctx) -> Result`` and a ``SIZES`` table per mode):

* ``mnist_features``  NTK features on MNIST: accuracy against dimension, exact NTK ceiling.
* ``cntk_table``      CNTKSketch against exact CNTK kernel ridge: accuracy, times, speed-up; CNN GradRF.
* ``regression``      NTK features against Nystrom, RFF, exact NTK and an MLP on diamonds / CPS1988.
* ``sparsity_curves`` error / time against m, error against time (the near-input-sparsity preprint).
* ``ntk_laplace``     NTK and Laplace kernel: eigenvalue decay on the sphere, kernel ridge accuracy.
* ``parity``          sparse parity: exact NTK kernel ridge against a trained MLP, error against n.
"""
EXPERIMENTS = ("mnist_features", "cntk_table", "regression", "sparsity_curves", "ntk_laplace", "parity")
