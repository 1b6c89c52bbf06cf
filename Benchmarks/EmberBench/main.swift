import Ember
print(Device.available)
