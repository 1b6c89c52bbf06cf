import Ember
print(_probe())
