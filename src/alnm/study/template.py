"""The commented study template written by `alnm init`."""

TEMPLATE = """\
# alnm study configuration. Paths are relative to this file. Validate with: alnm run --check STUDY.yaml
study: my_alnm_study
seed: 42                      # every random step (splits, CV folds, models, bootstrap) derives from it

data:
  tables: [patients.csv]      # one or more CSV/Parquet tables, merged on the ID column
  id: patient_id
  label: aln_status           # 1 = axillary node metastasis, 0 = none; rows without a label are excluded
  centre: centre              # optional: centre or scanner column

# imaging:                    # optional: images in, radiomics features and CNN crops out (docs/imaging.md)
#   manifest: manifest.csv    # patient_id, label, image_<sequence>, mask / bbox_*, mask_<rater>, clinical
#   reference: dce            # the sequence the mask lives on
#   sequences: [dce, t2, dwi]
#   phase: {rule: first_post} # first_post | index (k) | column | peak; subtraction: true for post - pre
#   preprocess: {n4: {shrink: 4}, spacing: 1.0, normalise: zscore, normalise_region: body}  # or nyul
#   radiomics: {preset: full, sequences: [dce, t2]}   # or params: pyradiomics_params.yaml
#   crops: {sequences: [dce, t2], size: 64, box_mm: 48}  # or margin_mm: 5; context_slices: 1 for 2.5-D
# (with imaging, data.tables may be empty: the manifest's other columns are the clinical table, and a
#  group such as {regex: "^dce_original_", repeat_table: "rater:r2"} picks radiomics features)

cohorts:
  mode: split                 # split | cv | leave_one_out
  internal_validation:        # stratified random split of the non-external patients (7:3 as in Gu 2025)
    fraction: 0.3
    seed: 42
  external:                   # patients whose column has one of these values are external cohorts
    - column: centre
      values: [hospital_B]
  # mode: leave_one_out       # alternative: hold out each scanner/centre in turn
  # leave_out_column: scanner
  # leave_out_min_size: 20    # smaller groups are never held out (they stay in training)
  training_cv_folds: 5        # out-of-fold training predictions (cohort "training_cv")

never_predictors: [n_stage]   # columns refused in any feature group (e.g. anything derived from the label)

derive:                       # derived variables, added as columns before groups are resolved
  - {name: SII, kind: sii, neutrophils: neutrophils, platelets: platelets, lymphocytes: lymphocytes}
  - {name: NLR, kind: nlr, neutrophils: neutrophils, lymphocytes: lymphocytes}

groups:
  clinical:                   # declared variables with types (first level of a categorical = reference)
    variables:
      age: continuous
      max_diameter_mm: continuous
      her2: binary
      ki67_high: binary
      grade: {type: categorical, levels: [1, 2, 3]}
  blood:
    columns: [SII, NLR]
  radiomics:
    prefix: "original_"       # or: columns: [...]   or: regex: "^(original|wavelet)_"
    selection:                # fitted inside every training fold, in this order
      - {step: missing, max_fraction: 0.2}
      - {step: impute}
      - {step: variance}
      - {step: univariate, alpha: 0.05}
      - {step: correlation, threshold: 0.9}
      - {step: mrmr, k: 20}
      - {step: lasso, rule: 1se}
    score: RadScore           # compress the selected features to one linear predictor
  # deep:                     # CNN embeddings (cross-fitted on the training patients) -> DLScore
  #   deep: {crops: imaging, n_folds: 3, options: {arch: resnet18, epochs: 30, patience: 8}}
  #   selection: [{step: variance}, {step: correlation, threshold: 0.9}, {step: mrmr, k: 10}, {step: lasso}]
  #   score: DLScore

models:
  Clinical:
    kind: clinical_logistic   # univariable screening (p < entry_p) then multivariable logistic regression
    groups: [clinical]
    entry_p: 0.05
  Radiomics:
    groups: [radiomics]
    classifier: auto          # chosen by stratified 5-fold CV AUC on the training cohort
  Radiomics+Clinical:
    groups: [radiomics, clinical, blood]
    classifier: logistic      # the nomogram form: RadScore + clinical variables -> logistic regression
  Voting:
    kind: voting              # weighted voting (Zhang 2022): weights = each member's accuracy
    members: [Clinical, Radiomics]
    soft: false               # true: accuracy-weighted mean of the members' probabilities
  # DL:                       # a CNN on the crops (docs/deep.md); crops: imaging or your crops CSV
  #   kind: cnn
  #   cnn:
  #     crops: imaging
  #     sequences: [dce]      # keep only these sequences' channels (one CNN per sequence: paper 002)
  #     ensemble: 5           # networks with seeds seed..seed+4, probabilities averaged
  #     options: {arch: resnet18, size: 64, intensity: zscore, epochs: 30, patience: 8, device: auto}

# cascade:                    # paper 004: stage I SLN for everyone, stage II NSLN on SLN-positive patients
#   sln: sln_status
#   nsln: nsln_status
#   stage1: Radiomics+Clinical   # a model above, or a model spec of its own
#   stage2: Radiomics
#   threshold: youden

evaluation:
  threshold: youden           # youden | a number | sensitivity:0.9 (chosen on training data only)
  bootstrap: 1000
  subgroups: []               # columns to report subgroups of
  # gradcam: {per_cell: 2}    # Grad-CAM gallery of every cnn model (off: gradcam: off)
"""
