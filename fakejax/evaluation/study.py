"""The published figures of the source study (Fashion-MNIST, 3 classes held out).

Its two DCGANs came from public notebooks; "better" is its second network. Its splits
differ from ours in size: all reals = 18,000 anomaly-class train images + 4,200 seen-class
held-out images, against 22,200 fakes. Each figure names our split it corresponds to.
"""

STUDY = {
    'better': {
        'own_fakes_vs_reals': {
            'accuracy': 0.76,
            'generated': {'precision': 0.69, 'recall': 0.94, 'f1': 0.79, 'support': 22200},
            'real': {'precision': 0.91, 'recall': 0.57, 'f1': 0.70, 'support': 22200},
            'macro avg': {'precision': 0.80, 'recall': 0.76, 'f1': 0.75, 'support': 44400},
            'weighted avg': {'precision': 0.80, 'recall': 0.76, 'f1': 0.75, 'support': 44400},
        },
        'anomaly_class_reals': {'real': {'recall': 0.57, 'support': 18000}},
        'seen_class_reals': {'real': {'recall': 0.61, 'support': 4200}},
        'other_gan_fakes': {'generated': {'recall': 1.00, 'support': 10000}},
    },
    'weaker': {
        'own_fakes_vs_reals': {
            'accuracy': 0.63,
            'generated': {'precision': 0.59, 'recall': 0.82, 'f1': 0.69, 'support': 22200},
            'real': {'precision': 0.71, 'recall': 0.44, 'f1': 0.54, 'support': 22200},
            'macro avg': {'precision': 0.65, 'recall': 0.63, 'f1': 0.61, 'support': 44400},
            'weighted avg': {'precision': 0.65, 'recall': 0.63, 'f1': 0.61, 'support': 44400},
        },
        'anomaly_class_reals': {'real': {'recall': 0.43, 'support': 18000}},
        'seen_class_reals': {'real': {'recall': 0.46, 'support': 4200}},
        'other_gan_fakes': {'generated': {'recall': 0.79, 'support': 10000}},
    },
}
